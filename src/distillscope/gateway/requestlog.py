"""The request log: one durable row per request, accepted or rejected, and its export.

:meth:`RequestLog.write` commits before it returns (SQLite runs with ``synchronous=FULL``), so
the gateway can write the row first and acknowledge the request after: a crash loses no
acknowledged request. The Parquet/JSONL export has exactly the columns of the table (see
"The request log" in ARCHITECTURE.md); ``params`` is exported as a JSON string.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from distillscope.errors import ConfigError, GatewayError
from distillscope.gateway.db import as_utc, utcnow
from distillscope.gateway.tables import account_usage as t_usage
from distillscope.gateway.tables import request_log as t_log
from distillscope.gateway.textcheck import has_surrogate, replace_surrogates
from distillscope.progress import Progress, ProgressTask, ensure_progress

log = logging.getLogger(__name__)

EXPORT_FORMATS = ("parquet", "jsonl", "csv")
# The export format a file suffix names (``logs export x.csv`` writes CSV).
EXPORT_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv"}
EXPORT_CHUNK_ROWS = 5_000
RETENTION_BATCH_ROWS = 5_000

def _arrow_type(column: sa.Column) -> pa.DataType:
    """The Arrow type of a ``request_log`` column in the export."""
    kind = column.type
    if isinstance(kind, sa.DateTime):
        return pa.timestamp("us", tz="UTC")
    if isinstance(kind, sa.Boolean):
        return pa.bool_()
    if isinstance(kind, sa.Integer):  # BigInteger included
        return pa.int64()
    if isinstance(kind, sa.Float):
        return pa.float64()
    return pa.string()


# Arrow schema of the export: derived from the SQL table (``tables.request_log``), in its column
# order, so the table, the export and RequestRecord (checked by a test) cannot drift apart.
EXPORT_SCHEMA = pa.schema([(c.name, _arrow_type(c)) for c in t_log.columns])


@dataclass
class RequestRecord:
    """One request as logged. ``params`` holds every sampling parameter as sent."""

    request_id: str
    ts: datetime
    endpoint: str
    status: int
    account_id: str | None = None
    key_id: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    temperature: float | None = None
    max_tokens: int | None = None
    logprobs: int = 0
    logit_bias: bool = False
    stream: bool = False
    prompt: str | None = None
    completion: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float | None = None
    error: str | None = None
    watermark_key_id: str | None = None
    end_user: str | None = None  # the OpenAI ``user`` field: a reseller's end user


_COLUMNS = [f.name for f in fields(RequestRecord)]


@dataclass(frozen=True)
class RetentionResult:
    redacted: int
    deleted: int


@dataclass(frozen=True)
class UsageSummary:
    """Per-account usage over a time range (``account_id`` None: failed authentication)."""

    account_id: str | None
    requests: int
    accepted: int
    rejected: int
    prompt_tokens: int
    completion_tokens: int
    first_ts: datetime | None
    last_ts: datetime | None


# Bounded text columns: client-controlled values (model, key id hints, upstream error codes) are
# cut to fit, so logging can never fail on what a client sent.
_MAX_LEN = {c.name: c.type.length for c in t_log.columns if getattr(c.type, "length", None)}


def _clean(name: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    value = value.replace("\x00", "\ufffd")  # PostgreSQL text cannot hold NUL
    if has_surrogate(value):  # nor can any UTF-8 column hold a lone surrogate
        value = replace_surrogates(value)
    limit = _MAX_LEN.get(name)
    return value[:limit] if limit else value


def _to_row(record: RequestRecord) -> dict[str, Any]:
    if not record.request_id or not record.endpoint:
        raise GatewayError("a request-log record needs a request_id and an endpoint", code="invalid_record")
    if record.ts is None or record.ts.tzinfo is None:
        raise GatewayError(f"request-log ts {record.ts!r} must be a timezone-aware datetime",
                           hint="use datetime.now(timezone.utc)", code="invalid_record")
    row = {name: _clean(name, getattr(record, name)) for name in _COLUMNS}
    row["ts"] = as_utc(record.ts)  # SQLite stores the wall time only: always store UTC
    row["params"] = json.dumps(record.params or {}, sort_keys=True, default=str)
    row["logprobs"] = int(record.logprobs or 0)
    return row


def _period(ts: datetime) -> str:
    """The UTC month of ``ts`` as ``YYYY-MM`` (the budget period)."""
    return as_utc(ts).strftime("%Y-%m")


def _usage_increments(rows: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[int, int, int]]:
    out: dict[tuple[str, str], tuple[int, int, int]] = {}
    for row in rows:
        if not row["account_id"]:
            continue
        key = (row["account_id"], _period(row["ts"]))
        n, pt, ct = out.get(key, (0, 0, 0))
        out[key] = (n + 1, pt + int(row["prompt_tokens"] or 0), ct + int(row["completion_tokens"] or 0))
    return out


_INSERT_ROW = t_log.insert()  # built once: it runs for every batch of rows
# Counting a batch's requests and tokens per account and month, as driver SQL (sqlite3's :name,
# psycopg's %(name)s placeholders): the same upsert on both databases.
_USAGE_SQL = ("INSERT INTO account_usage (account_id, period, requests, prompt_tokens, completion_tokens) "
              "VALUES (:a, :p, :n, :pt, :ct) ON CONFLICT (account_id, period) DO UPDATE SET "
              "requests = account_usage.requests + excluded.requests, "
              "prompt_tokens = account_usage.prompt_tokens + excluded.prompt_tokens, "
              "completion_tokens = account_usage.completion_tokens + excluded.completion_tokens")
_USAGE_UPSERT = (_USAGE_SQL, re.sub(r":(\w+)", r"%(\1)s", _USAGE_SQL))


def _from_row(row: Any) -> RequestRecord:
    values = dict(row._mapping)
    values["ts"] = as_utc(values["ts"])
    values["params"] = json.loads(values["params"]) if values["params"] else {}
    return RequestRecord(**values)


def _time_filters(since: datetime | None, until: datetime | None) -> list[Any]:
    conds = []
    for bound, op in ((since, "ge"), (until, "lt")):
        if bound is None:
            continue
        if bound.tzinfo is None:
            raise ConfigError(f"time bound {bound.isoformat()} has no timezone", hint="pass an aware UTC datetime")
        bound = as_utc(bound)
        conds.append(t_log.c.ts >= bound if op == "ge" else t_log.c.ts < bound)
    return conds


class RequestLog:
    """Writes, queries, exports and prunes the ``request_log`` table."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def write(self, record: RequestRecord) -> None:
        """Insert one row (and count it in ``account_usage``) and commit before returning."""
        self.write_many([record])

    def write_many(self, records: list[RequestRecord]) -> None:
        """Insert rows in one transaction (one commit, one disk flush), counting them per account and
        month in ``account_usage``; all or none are committed before this returns."""
        rows = [_to_row(r) for r in records]
        if not rows:
            return
        with self.engine.begin() as conn:
            conn.execute(_INSERT_ROW, rows)
            upsert = _USAGE_UPSERT[conn.dialect.name == "postgresql"]
            for (account_id, period), (n, pt, ct) in _usage_increments(rows).items():
                conn.exec_driver_sql(upsert, {"a": account_id, "p": period, "n": n, "pt": pt, "ct": ct})

    def month_usage(self, account_id: str, when: datetime | None = None) -> UsageSummary:
        """Requests and tokens of ``account_id`` in the UTC month of ``when`` (default: now)."""
        period = _period(as_utc(when) if when is not None else utcnow())
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(t_usage).where(t_usage.c.account_id == account_id,
                                                      t_usage.c.period == period)).first()
        return UsageSummary(account_id=account_id, requests=int(r.requests) if r else 0, accepted=0, rejected=0,
                            prompt_tokens=int(r.prompt_tokens) if r else 0,
                            completion_tokens=int(r.completion_tokens) if r else 0, first_ts=None, last_ts=None)

    def monthly_usage(self, period: str | None = None) -> list[dict[str, Any]]:
        """``account_usage`` rows (all months, or one ``YYYY-MM``), newest month first."""
        q = sa.select(t_usage).order_by(t_usage.c.period.desc(), t_usage.c.account_id)
        if period is not None:
            q = q.where(t_usage.c.period == period)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def query(self, *, since: datetime | None = None, until: datetime | None = None,
              account_id: str | None = None, key_id: str | None = None, limit: int | None = 1000
              ) -> list[RequestRecord]:
        """Rows in ``[since, until)`` (optionally for one account or key), oldest first."""
        q = sa.select(t_log).where(*self._filters(since, until, account_id, key_id)) \
            .order_by(t_log.c.ts, t_log.c.request_id)
        if limit is not None:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            return [_from_row(r) for r in conn.execute(q)]

    def count(self, *, since: datetime | None = None, until: datetime | None = None,
              account_id: str | None = None, key_id: str | None = None, rejected: bool | None = None) -> int:
        """Number of rows matching; ``rejected=True`` counts only status >= 400."""
        conds = self._filters(since, until, account_id, key_id)
        if rejected is not None:
            conds.append(t_log.c.status >= 400 if rejected else t_log.c.status < 400)
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(t_log).where(*conds)).scalar_one())

    def usage(self, *, since: datetime | None = None, until: datetime | None = None) -> list[UsageSummary]:
        """Per-account requests, accepted/rejected counts and token totals, busiest first."""
        rejected = sa.case((t_log.c.status >= 400, 1), else_=0)
        q = (sa.select(t_log.c.account_id, sa.func.count().label("requests"),
                       sa.func.sum(rejected).label("rejected"), sa.func.sum(t_log.c.prompt_tokens).label("pt"),
                       sa.func.sum(t_log.c.completion_tokens).label("ct"),
                       sa.func.min(t_log.c.ts).label("first"), sa.func.max(t_log.c.ts).label("last"))
             .where(*_time_filters(since, until)).group_by(t_log.c.account_id)
             .order_by(sa.func.count().desc(), t_log.c.account_id))
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [UsageSummary(account_id=r.account_id, requests=int(r.requests), rejected=int(r.rejected or 0),
                             accepted=int(r.requests) - int(r.rejected or 0), prompt_tokens=int(r.pt or 0),
                             completion_tokens=int(r.ct or 0), first_ts=as_utc(r.first), last_ts=as_utc(r.last))
                for r in rows]

    def export(self, path: str | Path, *, since: datetime | None = None, until: datetime | None = None,
               format: Literal["parquet", "jsonl", "csv"] = "parquet", progress: Progress | None = None,
               account_id: str | None = None) -> int:
        """Write rows in ``[since, until)`` (of one account if ``account_id``) to ``path``, streamed in
        chunks; returns the row count.

        The file appears atomically (written to a temporary file beside it, then renamed).
        ``progress`` advances by the rows written.
        """
        if format not in EXPORT_FORMATS:
            raise ConfigError(f"export format {format!r} is not supported", hint="use parquet, jsonl or csv",
                              code="invalid_format")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            writer = {"parquet": _write_parquet, "jsonl": _write_jsonl, "csv": _write_csv}[format]
            with ensure_progress(progress).task(f"exporting to {path.name}",
                                                total=self.count(since=since, until=until,
                                                                 account_id=account_id)) as task:
                n = writer(tmp, _advancing(self._chunks(since, until, account_id), task))
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        log.info("exported %d request-log rows to %s (%s)", n, path, format)
        return n

    def apply_retention(self, *, redact_prompts_after: timedelta | None = None,
                        delete_after: timedelta | None = None, now: datetime | None = None,
                        batch_size: int = RETENTION_BATCH_ROWS) -> RetentionResult:
        """Null the prompt and completion of rows older than ``redact_prompts_after`` and delete rows
        older than ``delete_after``. Token counts and metadata of redacted rows stay for analytics.

        Works in transactions of ``batch_size`` rows, so a large prune never blocks the gateway's
        writes for long.
        """
        for name, value in (("redact_prompts_after", redact_prompts_after), ("delete_after", delete_after)):
            if value is not None and value <= timedelta(0):
                raise ConfigError(f"{name}={value} must be positive", hint="e.g. 30d")
        now = as_utc(now) if now is not None else utcnow()
        deleted = redacted = 0
        if delete_after is not None:
            deleted = self._in_batches(lambda ids: t_log.delete().where(t_log.c.request_id.in_(ids)),
                                       t_log.c.ts < now - delete_after, batch_size)
        if redact_prompts_after is not None:
            redacted = self._in_batches(
                lambda ids: t_log.update().where(t_log.c.request_id.in_(ids)).values(prompt=None, completion=None),
                sa.and_(t_log.c.ts < now - redact_prompts_after,
                        sa.or_(t_log.c.prompt.is_not(None), t_log.c.completion.is_not(None))), batch_size)
        log.info("request-log retention: %d rows redacted, %d deleted", redacted, deleted)
        return RetentionResult(redacted=redacted, deleted=deleted)

    def _in_batches(self, statement: Callable[[Any], Any], condition: Any, batch_size: int) -> int:
        """Run ``statement(ids)`` over the rows matching ``condition``, ``batch_size`` rows per commit."""
        total = 0
        while True:
            with self.engine.begin() as conn:
                ids = sa.select(t_log.c.request_id).where(condition).limit(max(1, batch_size)).scalar_subquery()
                n = int(conn.execute(statement(ids)).rowcount)
            total += n
            if n < batch_size:
                return total

    # -- internals ---------------------------------------------------------------------------
    @staticmethod
    def _filters(since, until, account_id, key_id) -> list[Any]:  # noqa: ANN001
        conds = _time_filters(since, until)
        if account_id is not None:
            conds.append(t_log.c.account_id == account_id)
        if key_id is not None:
            conds.append(t_log.c.key_id == key_id)
        return conds

    def _chunks(self, since: datetime | None, until: datetime | None,
                account_id: str | None = None) -> Iterator[list[dict[str, Any]]]:
        q = sa.select(*[t_log.c[name] for name in EXPORT_SCHEMA.names]) \
            .where(*self._filters(since, until, account_id, None)).order_by(t_log.c.ts, t_log.c.request_id)
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=EXPORT_CHUNK_ROWS).execute(q)
            for part in result.partitions():
                rows = [dict(r._mapping) for r in part]
                for r in rows:
                    r["ts"] = as_utc(r["ts"])
                yield rows


def _advancing(chunks: Iterator[list[dict[str, Any]]], task: ProgressTask) -> Iterator[list[dict[str, Any]]]:
    for rows in chunks:
        yield rows
        task.advance(len(rows))


def _write_parquet(path: Path, chunks: Iterator[list[dict[str, Any]]]) -> int:
    n = 0
    with pq.ParquetWriter(path, EXPORT_SCHEMA, compression="zstd") as writer:
        for rows in chunks:
            writer.write_table(pa.Table.from_pylist(rows, schema=EXPORT_SCHEMA))
            n += len(rows)
    return n


def _write_jsonl(path: Path, chunks: Iterator[list[dict[str, Any]]]) -> int:
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for rows in chunks:
            for r in rows:
                r["ts"] = r["ts"].isoformat()
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += len(rows)
        fh.flush()
        os.fsync(fh.fileno())
    return n


def _write_csv(path: Path, chunks: Iterator[list[dict[str, Any]]]) -> int:
    """CSV with a header row; nulls are empty fields, ``ts`` is ISO 8601 UTC."""
    import pyarrow.csv as pacsv

    n = 0
    with pacsv.CSVWriter(str(path), EXPORT_SCHEMA) as writer:
        for rows in chunks:
            writer.write_table(pa.Table.from_pylist(rows, schema=EXPORT_SCHEMA))
            n += len(rows)
    return n
