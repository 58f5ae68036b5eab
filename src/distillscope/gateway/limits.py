"""Per-key rate limits shared by every gateway worker: requests/min, tokens/min, concurrency.

Requests and tokens are token buckets (capacity = the per-minute limit, refilled continuously);
concurrent requests are leases that expire after ``lease_ttl`` seconds, so a crashed worker cannot
leak a slot. State lives in Redis (:class:`RedisRateLimiter`, one Lua script per decision, atomic)
or in the gateway database (:class:`DatabaseRateLimiter`, one locking transaction per decision),
never only in process memory. A throttled key gets its limits × ``throttle_factor``
(:meth:`Limits.effective`). Rejections raise :class:`RateLimitError` carrying OpenAI's
``x-ratelimit-*`` headers and ``retry-after``.
"""

from __future__ import annotations

import logging
import math
import re
import secrets
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from distillscope.errors import GatewayError, RateLimitError
from distillscope.gateway.accounts import Limits, Principal
from distillscope.gateway.db import make_engine
from distillscope.gateway.tables import metadata
from distillscope.gateway.tables import rate_limit_buckets as t_buckets
from distillscope.gateway.tables import rate_limit_leases as t_leases

log = logging.getLogger(__name__)

DEFAULT_LEASE_TTL_S = 600.0
_CONCURRENCY_RETRY_S = 1.0


class Lease:
    """A granted request: its rate-limit headers, and a slot to give back when the request ends."""

    def __init__(self, headers: dict[str, str], release: Callable[[int], None] | None = None) -> None:
        self.headers = headers
        self._release = release

    def release(self, actual_tokens: int) -> None:
        """Free the concurrency slot and correct the token count to ``actual_tokens``; idempotent."""
        release, self._release = self._release, None
        if release is not None:
            release(max(0, int(actual_tokens)))


class RateLimiter(Protocol):
    def acquire(self, principal: Principal, *, est_tokens: int) -> Lease: ...


@dataclass(frozen=True)
class Decision:
    """Outcome of one limit check: ``reason`` is empty when granted."""

    reason: str
    requests_left: float | None
    tokens_left: float | None
    retry_after: float = 0.0


def format_reset(seconds: float) -> str:
    """Duration in OpenAI's header style: ``20ms``, ``1.5s``, ``6m0s``."""
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    if minutes:
        return f"{int(minutes)}m{math.ceil(rest)}s"
    return f"{round(rest, 3):g}s"


def rate_limit_headers(limits: Limits, requests_left: float | None, tokens_left: float | None) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*`` headers for the limits that are set."""
    headers: dict[str, str] = {}
    for kind, limit, left in (("requests", limits.rpm, requests_left), ("tokens", limits.tpm, tokens_left)):
        if limit is None or left is None:
            continue
        headers[f"x-ratelimit-limit-{kind}"] = str(limit)
        headers[f"x-ratelimit-remaining-{kind}"] = str(max(0, math.floor(left)))
        headers[f"x-ratelimit-reset-{kind}"] = format_reset((limit - left) * 60.0 / limit)
    return headers


def decide(limits: Limits, *, requests: float | None, tokens: float | None, active: int, est_tokens: int) -> Decision:
    """Check one request against refilled bucket levels and the number of active leases."""
    if limits.max_concurrent is not None and active >= limits.max_concurrent:
        return Decision("concurrency", requests, tokens, _CONCURRENCY_RETRY_S)
    if limits.rpm is not None and requests is not None and requests < 1:
        return Decision("requests", requests, tokens, (1 - requests) * 60.0 / limits.rpm)
    if limits.tpm is not None and tokens is not None:
        if est_tokens > limits.tpm:
            return Decision("too_large", requests, tokens, 60.0)
        if tokens < est_tokens:
            return Decision("tokens", requests, tokens, (est_tokens - tokens) * 60.0 / limits.tpm)
    return Decision("", None if requests is None else requests - 1,
                    None if tokens is None else tokens - est_tokens)


def refill(level: float | None, limit: int | None, elapsed: float) -> float | None:
    """Bucket level after ``elapsed`` seconds (a new bucket starts full)."""
    if limit is None:
        return None
    if level is None:
        return float(limit)
    return min(float(limit), level + max(0.0, elapsed) * limit / 60.0)


def _rejection(principal: Principal, limits: Limits, d: Decision, est_tokens: int) -> RateLimitError:
    messages = {
        "concurrency": f"concurrent-request limit ({limits.max_concurrent}) reached",
        "requests": f"requests-per-minute limit ({limits.rpm}) exceeded",
        "tokens": f"tokens-per-minute limit ({limits.tpm}) exceeded: this request needs about {est_tokens}",
        "too_large": f"this request needs about {est_tokens} tokens, more than the tokens-per-minute limit "
                     f"({limits.tpm})",
    }
    hint = "lower max_tokens or shorten the prompt" if d.reason == "too_large" else \
        f"retry after {d.retry_after:.2f}s"
    headers = rate_limit_headers(limits, d.requests_left, d.tokens_left)
    headers["retry-after"] = str(max(1, math.ceil(d.retry_after)))
    headers["retry-after-ms"] = str(max(1, math.ceil(d.retry_after * 1000)))
    state = f" ({principal.state.value})" if principal.state.value != "active" else ""
    return RateLimitError(f"rate limit for API key {principal.key_id}{state}: {messages[d.reason]}",
                          retry_after=d.retry_after, headers=headers, hint=hint, code="rate_limit_exceeded")


class DatabaseRateLimiter:
    """Limits kept in the gateway database (``rate_limit_buckets``, ``rate_limit_leases``).

    Each decision is one transaction that locks the key's bucket row first (an upsert with
    ``RETURNING``: a row lock on PostgreSQL; ``BEGIN IMMEDIATE`` on SQLite), so workers sharing the
    database share the limits. Limiter state need not survive a power loss, so the limiter uses
    its own engine whose commits skip the disk flush (``synchronous_commit=off`` on PostgreSQL,
    ``synchronous=NORMAL`` on SQLite), and on SQLite its own file (``gateway.limits.sqlite`` beside
    ``gateway.sqlite``, see :func:`limiter_path`); the request log keeps full durability.
    """

    def __init__(self, engine: Engine, *, lease_ttl: float = DEFAULT_LEASE_TTL_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.engine = _limiter_engine(engine)
        self.lease_ttl = lease_ttl
        self._clock = clock
        # SQLite: this process's threads take turns here instead of in SQLite's busy handler, which
        # sleeps 1-100 ms per retry; other processes still share the file's write lock.
        self._local_lock = threading.Lock() if self.engine.dialect.name == "sqlite" else None

    def check(self) -> bool:
        """Whether the limiter's database answers (for ``/readyz``)."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return True
        except SQLAlchemyError:
            return False

    @contextmanager
    def _transaction(self) -> Iterator[sa.Connection]:
        if self._local_lock is None:
            with self.engine.connect() as conn, conn.begin():
                yield conn
            return
        with self._local_lock, self.engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, \
                conn.begin():
            yield conn

    def acquire(self, principal: Principal, *, est_tokens: int) -> Lease:
        limits = principal.limits.effective(principal.state)
        if limits.rpm is None and limits.tpm is None and limits.max_concurrent is None:
            return Lease({})
        key_id, est_tokens = principal.key_id, max(0, int(est_tokens))
        lease_id = secrets.token_hex(8) if limits.max_concurrent is not None else None
        try:
            with self._transaction() as conn:
                sql = _statements(conn.dialect.name)
                now = self._clock()
                requests, tokens, updated = conn.exec_driver_sql(sql["lock"], {
                    "k": key_id, "r": float(limits.rpm or 0), "t": float(limits.tpm or 0), "u": now}).one()
                active = 0
                if limits.max_concurrent is not None:
                    active = conn.exec_driver_sql(sql["active"], {"k": key_id, "now": now}).scalar_one()
                elapsed = now - updated
                d = decide(limits, requests=refill(requests, limits.rpm, elapsed),
                           tokens=refill(tokens, limits.tpm, elapsed), active=active, est_tokens=est_tokens)
                if d.reason:
                    raise _rejection(principal, limits, d, est_tokens)
                conn.exec_driver_sql(sql["update"], {
                    "k": key_id, "r": d.requests_left if d.requests_left is not None else requests,
                    "t": d.tokens_left if d.tokens_left is not None else tokens, "u": now})
                if lease_id is not None:
                    conn.exec_driver_sql(sql["lease"], {"l": lease_id, "k": key_id, "e": now + self.lease_ttl})
        except SQLAlchemyError as exc:
            raise GatewayError(f"the rate limiter's database is unavailable ({exc.__class__.__name__})",
                               code="rate_limiter_unavailable") from exc
        headers = rate_limit_headers(limits, d.requests_left, d.tokens_left)
        return Lease(headers, lambda actual: self._release(key_id, lease_id, limits.tpm, est_tokens - actual))

    def _release(self, key_id: str, lease_id: str | None, tpm: int | None, refund: int) -> None:
        if lease_id is None and (tpm is None or not refund):
            return
        try:
            with self._transaction() as conn:
                sql = _statements(conn.dialect.name)
                if lease_id is not None:  # also sweeps this key's leases left behind by crashed workers
                    conn.exec_driver_sql(sql["release"], {"l": lease_id, "k": key_id, "now": self._clock()})
                if tpm is not None and refund:
                    conn.exec_driver_sql(sql["refund"], {"k": key_id, "n": float(refund), "cap": float(tpm)})
        except SQLAlchemyError:  # the lease expires on its own; never fail a finished request
            log.warning("could not release the rate-limit lease of key %s; it expires after %.0fs",
                        key_id, self.lease_ttl, exc_info=True)


# The limiter's statements as driver SQL: they run on every request, and building SQLAlchemy Core
# statements costs more CPU than the database work. ":name" placeholders (sqlite3's named style)
# become "%(name)s" for psycopg. Each locks the key's bucket row first (the upsert), so a decision
# is one serialised transaction per key.
_SQL = {
    "lock": "INSERT INTO rate_limit_buckets (key_id, requests, tokens, updated) VALUES (:k, :r, :t, :u) "
            "ON CONFLICT (key_id) DO UPDATE SET key_id = excluded.key_id RETURNING requests, tokens, updated",
    "active": "SELECT count(*) FROM rate_limit_leases WHERE key_id = :k AND expires > :now",
    "update": "UPDATE rate_limit_buckets SET requests = :r, tokens = :t, updated = :u WHERE key_id = :k",
    "lease": "INSERT INTO rate_limit_leases (lease_id, key_id, expires) VALUES (:l, :k, :e)",
    "release": "DELETE FROM rate_limit_leases WHERE lease_id = :l OR (key_id = :k AND expires <= :now)",
    "refund": "UPDATE rate_limit_buckets SET tokens = {least}(tokens + :n, :cap) WHERE key_id = :k",
}
_SQL_BY_DIALECT: dict[str, dict[str, str]] = {}


def _statements(dialect: str) -> dict[str, str]:
    sql = _SQL_BY_DIALECT.get(dialect)
    if sql is None:
        least = "min" if dialect == "sqlite" else "least"
        sql = {k: v.replace("{least}", least) for k, v in _SQL.items()}
        if dialect != "sqlite":
            sql = {k: re.sub(r":(\w+)", r"%(\1)s", v) for k, v in sql.items()}
        _SQL_BY_DIALECT[dialect] = sql
    return sql


def limiter_path(database: str) -> Path:
    """Where the SQLite limiter keeps its state: beside the log database, ``gateway.limits.sqlite``."""
    path = Path(database).expanduser()
    return path.with_name(f"{path.stem}.limits{path.suffix or '.sqlite'}")


def _limiter_engine(engine: Engine) -> Engine:
    """The limiter's own engine: commits skip the disk flush (limiter state need not survive a power
    loss). On SQLite its tables live in their own file beside the log database, so limiter
    transactions never wait behind a request-log commit's fsync for the one write lock of a file."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        if url.database in (None, "", ":memory:") or url.database.startswith("file:"):
            return engine
        limiter = make_engine(url.set(database=str(limiter_path(url.database))).render_as_string(
            hide_password=False), durable=False)
        # Scratch state, recreated empty when missing; the gateway database itself only changes
        # through its Alembic migrations.
        # BEGIN IMMEDIATE: workers starting together create them once, one after the other.
        with limiter.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
            metadata.create_all(conn, tables=[t_buckets, t_leases])
        return limiter
    return make_engine(url.render_as_string(hide_password=False), durable=False)


_ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rpm, tpm, maxc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local est, lease, ttl = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local b = redis.call('HMGET', KEYS[1], 'r', 't', 'u')
local r, tk, u = tonumber(b[1]), tonumber(b[2]), tonumber(b[3])
local el = 0
if u then el = math.max(0, now - u) end
if rpm >= 0 then if r == nil then r = rpm end; r = math.min(rpm, r + el * rpm / 60) end
if tpm >= 0 then if tk == nil then tk = tpm end; tk = math.min(tpm, tk + el * tpm / 60) end
local active = 0
if maxc >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  active = redis.call('ZCARD', KEYS[2])
end
local reason, wait = '', 0
if maxc >= 0 and active >= maxc then reason = 'concurrency'; wait = 1
elseif rpm >= 0 and r < 1 then reason = 'requests'; wait = (1 - r) * 60 / rpm
elseif tpm >= 0 and est > tpm then reason = 'too_large'; wait = 60
elseif tpm >= 0 and tk < est then reason = 'tokens'; wait = (est - tk) * 60 / tpm
end
if reason == '' then
  if rpm >= 0 then r = r - 1 end
  if tpm >= 0 then tk = tk - est end
  redis.call('HSET', KEYS[1], 'r', tostring(r or 0), 't', tostring(tk or 0), 'u', tostring(now))
  redis.call('PEXPIRE', KEYS[1], 600000)
  if maxc >= 0 then
    redis.call('ZADD', KEYS[2], now + ttl, lease)
    redis.call('PEXPIRE', KEYS[2], math.ceil(ttl * 1000) + 1000)
  end
end
return {reason, tostring(r or -1), tostring(tk or -1), tostring(wait)}
"""

_RELEASE_LUA = """
redis.call('ZREM', KEYS[2], ARGV[1])
local tpm, refund = tonumber(ARGV[2]), tonumber(ARGV[3])
if tpm >= 0 and refund ~= 0 and redis.call('EXISTS', KEYS[1]) == 1 then
  local tk = tonumber(redis.call('HGET', KEYS[1], 't')) or tpm
  redis.call('HSET', KEYS[1], 't', tostring(math.min(tpm, tk + refund)))
end
return 1
"""


class RedisRateLimiter:
    """Limits kept in Redis; each decision is one atomic Lua script using the Redis clock."""

    def __init__(self, client: Any, *, prefix: str = "distillscope:ratelimit:",
                 lease_ttl: float = DEFAULT_LEASE_TTL_S) -> None:
        self.client = client
        self.prefix = prefix
        self.lease_ttl = lease_ttl
        self._acquire = client.register_script(_ACQUIRE_LUA)
        self._release_script = client.register_script(_RELEASE_LUA)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisRateLimiter:
        import redis

        return cls(redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0), **kwargs)

    def check(self) -> bool:
        """Whether Redis answers (for ``/readyz``)."""
        import redis

        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def _keys(self, key_id: str) -> list[str]:
        # The hash tag keeps both keys of one API key in the same Redis Cluster slot.
        return [f"{self.prefix}{{{key_id}}}:bucket", f"{self.prefix}{{{key_id}}}:leases"]

    def acquire(self, principal: Principal, *, est_tokens: int) -> Lease:
        import redis

        limits = principal.limits.effective(principal.state)
        if limits.rpm is None and limits.tpm is None and limits.max_concurrent is None:
            return Lease({})
        est_tokens, lease_id = max(0, int(est_tokens)), secrets.token_hex(8)
        args = [_or_minus(limits.rpm), _or_minus(limits.tpm), _or_minus(limits.max_concurrent), est_tokens,
                lease_id, self.lease_ttl]
        keys = self._keys(principal.key_id)
        try:
            reason, r, tk, wait = self._acquire(keys=keys, args=args)
        except redis.RedisError as exc:
            raise GatewayError(f"the rate limiter's Redis is unavailable ({exc.__class__.__name__})",
                               code="rate_limiter_unavailable") from exc
        reason = reason.decode() if isinstance(reason, bytes) else reason
        d = Decision(reason, None if limits.rpm is None else float(r), None if limits.tpm is None else float(tk),
                     float(wait))
        if d.reason:
            raise _rejection(principal, limits, d, est_tokens)
        headers = rate_limit_headers(limits, d.requests_left, d.tokens_left)
        return Lease(headers, lambda actual: self._release(keys, lease_id, limits.tpm, est_tokens - actual))

    def _release(self, keys: list[str], lease_id: str, tpm: int | None, refund: int) -> None:
        import redis

        try:
            self._release_script(keys=keys, args=[lease_id, _or_minus(tpm), refund])
        except redis.RedisError:
            log.warning("could not release a rate-limit lease in Redis; it expires after %.0fs", self.lease_ttl,
                        exc_info=True)


def _or_minus(value: int | None) -> int:
    return -1 if value is None else int(value)


def make_rate_limiter(settings: Any, engine: Engine) -> RateLimiter:
    """:class:`RedisRateLimiter` when ``settings.redis_url`` is set, else :class:`DatabaseRateLimiter`."""
    if getattr(settings, "redis_url", None):
        return RedisRateLimiter.from_url(settings.redis_url)
    return DatabaseRateLimiter(engine)
