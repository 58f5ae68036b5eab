"""The request-log schema traffic forensics reads, and how foreign logs are mapped onto it.

The canonical columns are the gateway's ``request_log`` columns (see ARCHITECTURE.md). Only
``request_id``, ``ts`` and ``account_id`` are required; every other column may be absent (it is
then filled with nulls) and every feature built on an absent or null column is itself null,
which the scorer treats as *no evidence* -- a flag is never raised on missing data.

Documented handling of bad rows (counted in :class:`LogReport`, never a crash mid-scan):

* duplicated ``request_id``: the first occurrence (in file order) is kept, the rest dropped;
* null ``request_id``: the row is dropped;
* null or unparseable ``ts``: the row is dropped;
* rows out of time order (clock skew between gateway workers): the log is sorted by
  ``(ts, request_id)``; timestamps more than ``max_future_s`` after the newest plausible time
  (the 99.9th percentile) are counted as skewed and clamped out of timing features;
* null ``account_id`` (failed authentication): kept for IP analysis, never scored as an account;
* wrong types: a column that cannot be cast raises :class:`InputDataError` naming the column,
  an example value and the fix.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import pyarrow as pa
import pyarrow.compute as pc

from distillscope.errors import InputDataError

logger = logging.getLogger(__name__)

#: Canonical request-log columns and their Arrow types, in gateway order.
LOG_COLUMNS: dict[str, pa.DataType] = {
    "request_id": pa.string(),
    "ts": pa.timestamp("us", tz="UTC"),
    "account_id": pa.string(),
    "key_id": pa.string(),
    "client_ip": pa.string(),
    "user_agent": pa.string(),
    "endpoint": pa.string(),
    "model": pa.string(),
    "params": pa.string(),
    "temperature": pa.float64(),
    "max_tokens": pa.int64(),
    "logprobs": pa.int64(),
    "logit_bias": pa.bool_(),
    "stream": pa.bool_(),
    "prompt": pa.string(),
    "completion": pa.string(),
    "prompt_tokens": pa.int64(),
    "completion_tokens": pa.int64(),
    "latency_ms": pa.float64(),
    "status": pa.int64(),
    "error": pa.string(),
    "watermark_key_id": pa.string(),
    "user": pa.string(),
}
REQUIRED_COLUMNS = ("request_id", "ts", "account_id")
#: Canonical columns that the gateway's export names differently (the OpenAI ``user`` field is ``end_user``).
EXPORT_NAMES = {"user": "end_user"}
#: The canonical columns a batch scan reads (features, examples); ``load_log(..., columns=SCAN_COLUMNS)``
#: leaves the others (completions, params, ...) unread, which saves ~40% of memory on large logs.
SCAN_COLUMNS = ("request_id", "ts", "account_id", "client_ip", "user_agent", "prompt", "prompt_tokens",
                "completion_tokens", "max_tokens", "logprobs", "logit_bias", "status", "user")


@dataclass(frozen=True)
class LogReport:
    """What loading did to the raw log: every dropped or adjusted row is counted here."""

    source: str
    n_rows_read: int
    n_rows: int
    n_duplicate_ids: int
    n_null_ids: int
    n_bad_ts: int
    n_out_of_order: int
    n_unauthenticated: int
    missing_columns: tuple[str, ...]

    def notes(self) -> tuple[str, ...]:
        out = []
        if self.n_duplicate_ids:
            out.append(f"{self.n_duplicate_ids} duplicated request_id rows dropped (first kept)")
        if self.n_null_ids:
            out.append(f"{self.n_null_ids} rows without request_id dropped")
        if self.n_bad_ts:
            out.append(f"{self.n_bad_ts} rows without a usable ts dropped")
        if self.n_out_of_order:
            out.append(f"{self.n_out_of_order} rows were out of time order (clock skew); log sorted by ts")
        if self.n_unauthenticated:
            out.append(f"{self.n_unauthenticated} rows without account_id (failed auth) not scored")
        if self.missing_columns:
            out.append("absent columns (their features are null, never evidence): "
                       + ", ".join(self.missing_columns))
        return tuple(out)


@dataclass(frozen=True)
class RequestLogTable:
    """A validated request log: canonical columns, sorted by ``ts``, plus its load report."""

    table: pa.Table
    report: LogReport

    @property
    def num_rows(self) -> int:
        return self.table.num_rows


def parse_mapping(pairs: list[str] | tuple[str, ...] | None) -> dict[str, str]:
    """Parse ``their_name=canonical_name`` strings (the CLI's ``--map``) into a rename mapping."""
    mapping: dict[str, str] = {}
    for pair in pairs or ():
        if "=" not in pair:
            raise InputDataError(f"column mapping {pair!r} is not of the form THEIR_COLUMN=CANONICAL_COLUMN",
                                 hint="e.g. --map user=account_id --map created_at=ts")
        src, dst = (s.strip() for s in pair.split("=", 1))
        if dst not in LOG_COLUMNS:
            raise InputDataError(f"column mapping {pair!r} targets unknown column {dst!r}",
                                 hint=f"canonical columns: {', '.join(LOG_COLUMNS)}")
        mapping[src] = dst
    return mapping


def read_raw_log(source: str | Path, columns: list[str] | None = None) -> pa.Table:
    """Read a Parquet, JSONL or CSV export, or the ``request_log`` table of a SQLAlchemy URL.

    columns: read only these (those present); Parquet skips the others on disk.
    """
    text = str(source)
    if "://" in text:
        return _read_database(text)
    path = Path(text)
    if not path.exists():
        raise InputDataError(f"request log {path} does not exist", hint="pass a Parquet/JSONL/CSV export "
                             "(distillscope logs export) or a database URL such as sqlite:///gateway.sqlite")
    suffix = path.suffix.lower()
    try:
        if path.is_dir() or suffix in (".parquet", ".pq"):
            import pyarrow.dataset as ds

            dataset = ds.dataset(path, format="parquet")
            names = None if columns is None else [c for c in dataset.schema.names if c in columns]
            return dataset.to_table(columns=names)
        if suffix in (".jsonl", ".json", ".ndjson"):
            import pyarrow.json as pj

            return pj.read_json(path, parse_options=pj.ParseOptions(newlines_in_values=False))
        if suffix == ".csv":
            import pyarrow.csv as pcsv

            return pcsv.read_csv(path)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise InputDataError(f"request log {path} could not be read: {exc}",
                             hint="check that the file is complete and in the format its suffix says") from exc
    raise InputDataError(f"request log {path} has unknown suffix {suffix!r}",
                         hint="use .parquet, .jsonl or .csv, or a database URL")


def _read_database(url: str) -> pa.Table:
    import pandas as pd
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            df = pd.read_sql_table("request_log", conn)
    except (sa.exc.SQLAlchemyError, ValueError) as exc:
        raise InputDataError(f"could not read table request_log from {url.split('@')[-1]}: {exc}",
                             hint="check the database URL and that the gateway has written requests") from exc
    finally:
        if "engine" in locals():
            engine.dispose()
    return pa.Table.from_pandas(df, preserve_index=False)


def _cast_ts(col: pa.ChunkedArray) -> pa.ChunkedArray:
    target = LOG_COLUMNS["ts"]
    t = col.type
    if pa.types.is_timestamp(t):
        if t.tz is None:
            col = pc.assume_timezone(col, "UTC")
        return col.cast(target)
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        # Epoch numbers: seconds, or milliseconds when implausibly large for seconds.
        vals = col.cast(pa.float64())
        mx = pc.max(pc.abs(vals)).as_py() or 0.0
        scale = 1_000.0 if mx > 1e11 else 1_000_000.0
        return pc.multiply(vals, scale).cast(pa.int64()).cast(target)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        import pandas as pd

        parsed = pd.to_datetime(col.to_pandas(), utc=True, errors="coerce", format="mixed")
        return pa.chunked_array([pa.array(parsed, type=target)])
    raise TypeError(f"type {t}")


def _cast_column(name: str, col: pa.ChunkedArray) -> pa.ChunkedArray:
    target = LOG_COLUMNS[name]
    try:
        if name == "ts":
            return _cast_ts(col)
        if col.type == target:
            return col
        if pa.types.is_null(col.type):
            return pa.nulls(len(col), target) if isinstance(col, pa.Array) else col.cast(target)
        if target == pa.string() and not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
            if pa.types.is_struct(col.type) or pa.types.is_list(col.type) or pa.types.is_map(col.type):
                import json

                return pa.chunked_array([pa.array([None if v is None else json.dumps(v) for v in col.to_pylist()],
                                                  type=pa.string())])
        if target == pa.bool_() and pa.types.is_string(col.type):
            truthy = pc.is_in(pc.utf8_lower(col), value_set=pa.array(["true", "1", "yes", "t"]))
            return pc.if_else(pc.is_null(col), pa.scalar(None, pa.bool_()), truthy)
        return col.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError) as exc:
        example = next((v for v in col.to_pylist()[:1000] if v is not None), None)
        raise InputDataError(
            f"request log column {name!r} has type {col.type} (e.g. {example!r}) which cannot be read as {target}",
            hint=f"convert {name} to {target} or map another column onto it with --map") from exc


def normalize_log(raw: pa.Table, *, mapping: Mapping[str, str] | None = None,
                  source: str = "<table>", columns: tuple[str, ...] | None = None) -> RequestLogTable:
    """Rename mapped columns, check required ones, cast types, drop bad rows and sort by time.

    columns: canonical columns to keep (default all); the others are null and not reported missing.
    """
    mapping = dict(mapping or {})
    for src in mapping:
        if src not in raw.column_names:
            raise InputDataError(f"column mapping names {src!r}, which is not a column of {source}",
                                 hint=f"its columns are: {', '.join(raw.column_names)}")
    names = [mapping.get(c, c) for c in raw.column_names]
    for canonical, exported in EXPORT_NAMES.items():   # the gateway's own export, read as it is
        if canonical not in names and exported in names:
            names = [canonical if n == exported else n for n in names]
    raw = raw.rename_columns(names)
    missing_req = [c for c in REQUIRED_COLUMNS if c not in raw.column_names]
    if missing_req:
        raise InputDataError(
            f"request log {source} lacks required column(s) {', '.join(missing_req)}",
            hint="map your columns onto the canonical names, e.g. --map user=account_id --map time=ts "
                 "(docs/traffic.md lists them)")
    n_read = raw.num_rows
    cols, missing = {}, []
    for name in LOG_COLUMNS:
        if name in raw.column_names and (columns is None or name in columns):
            cols[name] = _cast_column(name, raw.column(name))
        else:
            if columns is None or name in columns:
                missing.append(name)
            cols[name] = pa.chunked_array([pa.nulls(n_read, LOG_COLUMNS[name])])
    table = pa.table(cols)
    return _clean_rows(table, source=source, n_read=n_read, missing=tuple(missing))


def _clean_rows(table: pa.Table, *, source: str, n_read: int, missing: tuple[str, ...]) -> RequestLogTable:
    null_id = pc.is_null(table.column("request_id"))
    n_null_ids = pc.sum(null_id.cast(pa.int64())).as_py() or 0
    bad_ts = pc.is_null(table.column("ts"))
    n_bad_ts = pc.sum(pc.and_(bad_ts, pc.invert(null_id)).cast(pa.int64())).as_py() or 0
    table = table.filter(pc.invert(pc.or_(null_id, bad_ts)))
    # Out-of-order rows: how many arrive earlier than the row before them in file order.
    ts_int = table.column("ts").cast(pa.int64()).to_numpy()
    import numpy as np

    n_out_of_order = int(np.sum(np.diff(ts_int) < 0)) if len(ts_int) > 1 else 0
    # Duplicated ids: keep the first occurrence in file order.
    idx = pa.array(np.arange(table.num_rows))
    firsts = (pa.table({"request_id": table.column("request_id"), "i": idx})
              .group_by("request_id", use_threads=False).aggregate([("i", "min")]))
    keep = np.zeros(table.num_rows, dtype=bool)
    keep[firsts.column("i_min").to_numpy()] = True
    n_dup = int(table.num_rows - keep.sum())
    table = table.filter(pa.array(keep))
    table = table.sort_by([("ts", "ascending"), ("request_id", "ascending")])
    n_unauth = pc.sum(pc.is_null(table.column("account_id")).cast(pa.int64())).as_py() or 0
    report = LogReport(source=source, n_rows_read=n_read, n_rows=table.num_rows, n_duplicate_ids=n_dup,
                       n_null_ids=n_null_ids, n_bad_ts=n_bad_ts, n_out_of_order=n_out_of_order,
                       n_unauthenticated=n_unauth, missing_columns=missing)
    for note in report.notes():
        logger.info("%s: %s", source, note)
    if table.num_rows == 0:
        raise InputDataError(f"request log {source} holds no usable rows ({n_read} read)",
                             hint="every row lacked a request_id or a timestamp")
    return RequestLogTable(table, report)


def load_log(source: str | Path | pa.Table, *, mapping: Mapping[str, str] | None = None,
             columns: tuple[str, ...] | None = None) -> RequestLogTable:
    """Read and validate a request log from a file, a database URL or an Arrow table.

    columns: canonical columns to read (e.g. :data:`SCAN_COLUMNS`; required ones are always
    read); the others are left null -- not read from Parquet at all -- and not reported missing.
    """
    if columns is not None:
        columns = tuple(dict.fromkeys((*REQUIRED_COLUMNS, *columns)))
    if isinstance(source, pa.Table):
        return normalize_log(source, mapping=mapping, columns=columns)
    wanted = None
    if columns is not None:     # their names for the columns we want, so a mapped file reads only those
        back = {dst: src for src, dst in (mapping or {}).items()}
        wanted = [back.get(c, c) for c in columns] + list(mapping or {}) + [EXPORT_NAMES[c] for c in columns
                                                                            if c in EXPORT_NAMES]
    return normalize_log(read_raw_log(source, wanted), mapping=mapping, source=str(source), columns=columns)
