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
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from distillscope.errors import GatewayError, RateLimitError
from distillscope.gateway.accounts import Limits, Principal
from distillscope.gateway.db import make_engine
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
    ``synchronous=NORMAL`` on SQLite); the request log keeps full durability.
    """

    def __init__(self, engine: Engine, *, lease_ttl: float = DEFAULT_LEASE_TTL_S,
                 clock: Callable[[], float] = time.time) -> None:
        if engine.url.database not in (None, "", ":memory:"):
            engine = make_engine(engine.url.render_as_string(hide_password=False), durable=False)
        self.engine = engine
        self.lease_ttl = lease_ttl
        self._clock = clock

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
        with self.engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
            yield conn

    def acquire(self, principal: Principal, *, est_tokens: int) -> Lease:
        limits = principal.limits.effective(principal.state)
        if limits.rpm is None and limits.tpm is None and limits.max_concurrent is None:
            return Lease({})
        key_id, est_tokens = principal.key_id, max(0, int(est_tokens))
        lease_id = secrets.token_hex(8) if limits.max_concurrent is not None else None
        try:
            with self._transaction() as conn:
                now = self._clock()
                row = _lock_bucket(conn, key_id, limits, now)
                active = 0
                if limits.max_concurrent is not None:
                    active = conn.execute(sa.select(sa.func.count()).select_from(t_leases).where(
                        t_leases.c.key_id == key_id, t_leases.c.expires > now)).scalar_one()
                elapsed = now - row.updated
                d = decide(limits, requests=refill(row.requests, limits.rpm, elapsed),
                           tokens=refill(row.tokens, limits.tpm, elapsed), active=active, est_tokens=est_tokens)
                if d.reason:
                    raise _rejection(principal, limits, d, est_tokens)
                conn.execute(t_buckets.update().where(t_buckets.c.key_id == key_id).values(
                    requests=d.requests_left if d.requests_left is not None else row.requests,
                    tokens=d.tokens_left if d.tokens_left is not None else row.tokens, updated=now))
                if lease_id is not None:
                    conn.execute(t_leases.insert().values(lease_id=lease_id, key_id=key_id,
                                                          expires=now + self.lease_ttl))
        except SQLAlchemyError as exc:
            raise GatewayError(f"the rate limiter's database is unavailable ({exc.__class__.__name__})",
                               code="rate_limiter_unavailable") from exc
        headers = rate_limit_headers(limits, d.requests_left, d.tokens_left)
        return Lease(headers, lambda actual: self._release(key_id, lease_id, limits.tpm, est_tokens - actual))

    def _release(self, key_id: str, lease_id: str | None, tpm: int | None, refund: int) -> None:
        try:
            with self._transaction() as conn:
                if lease_id is not None:  # also sweeps this key's leases left behind by crashed workers
                    conn.execute(t_leases.delete().where(sa.or_(
                        t_leases.c.lease_id == lease_id,
                        sa.and_(t_leases.c.key_id == key_id, t_leases.c.expires <= self._clock()))))
                if tpm is not None and refund:
                    least = sa.func.min if conn.dialect.name == "sqlite" else sa.func.least
                    conn.execute(t_buckets.update().where(t_buckets.c.key_id == key_id).values(
                        tokens=least(t_buckets.c.tokens + refund, float(tpm))))
        except SQLAlchemyError:  # the lease expires on its own; never fail a finished request
            log.warning("could not release the rate-limit lease of key %s; it expires after %.0fs",
                        key_id, self.lease_ttl, exc_info=True)


def _lock_bucket(conn: sa.Connection, key_id: str, limits: Limits, now: float) -> Any:
    """The key's bucket row, created full if missing, locked until the transaction ends (one statement)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(t_buckets).values(key_id=key_id, requests=float(limits.rpm or 0),
                                            tokens=float(limits.tpm or 0), updated=now)
    stmt = stmt.on_conflict_do_update(index_elements=["key_id"], set_={"key_id": stmt.excluded.key_id})
    return conn.execute(stmt.returning(t_buckets.c.requests, t_buckets.c.tokens, t_buckets.c.updated)).one()


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
