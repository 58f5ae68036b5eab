"""Rate limits: rpm / tpm / concurrency on the database and the real Redis limiter, shared by workers."""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid

import pytest

from distillscope.errors import GatewayError, RateLimitError
from distillscope.gateway.accounts import KeyState, Limits, Principal
from distillscope.gateway.db import make_engine, upgrade_database
from distillscope.gateway.limits import (DatabaseRateLimiter, RedisRateLimiter, format_reset, make_rate_limiter)
from distillscope.settings import load_settings

HEADER_NAMES = {"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests",
                "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"}


def principal(rpm=None, tpm=None, conc=None, state=KeyState.ACTIVE, key_id=None) -> Principal:
    return Principal(account_id="acct_test", account_name="test", key_id=key_id or uuid.uuid4().hex[:12],
                     state=state, limits=Limits(rpm=rpm, tpm=tpm, max_concurrent=conc))


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _db_url(kind: str, tmp_path, request) -> str:
    return f"sqlite:///{tmp_path / 'limits.sqlite'}" if kind == "sqlite" else request.getfixturevalue("postgres_url")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres),
                        pytest.param("redis", marks=pytest.mark.redis)])
def make_limiter(request, tmp_path):
    """A factory of limiters that share state, like several gateway workers."""
    kind = request.param
    if kind == "redis":
        url, prefix = request.getfixturevalue("redis_url"), f"distillscope-test:{uuid.uuid4().hex}:"
        clients = []

        def factory(**kw):
            lim = RedisRateLimiter.from_url(url, prefix=prefix, **kw)
            clients.append(lim.client)
            return lim
        yield factory
        for key in clients[0].scan_iter(f"{prefix}*") if clients else ():
            clients[0].delete(key)
        return
    url, engines = _db_url(kind, tmp_path, request), []
    upgrade_database(make_engine(url))

    def factory(**kw):
        engines.append(make_engine(url))  # one engine per "worker"
        return DatabaseRateLimiter(engines[-1], **kw)
    yield factory
    for e in engines:
        e.dispose()


def test_requests_per_minute(make_limiter):
    lim, p = make_limiter(), principal(rpm=3, tpm=1000)
    leases = [lim.acquire(p, est_tokens=10) for _ in range(3)]
    assert set(leases[0].headers) == HEADER_NAMES
    assert [int(x.headers["x-ratelimit-remaining-requests"]) for x in leases] == [2, 1, 0]
    assert leases[0].headers["x-ratelimit-limit-requests"] == "3"
    with pytest.raises(RateLimitError) as info:
        lim.acquire(p, est_tokens=10)
    err = info.value
    assert err.code == "rate_limit_exceeded" and "requests-per-minute limit (3)" in str(err)
    assert 15 < err.retry_after <= 20  # one request refills in 60/3 s
    assert set(err.headers) >= HEADER_NAMES | {"retry-after"}
    assert err.headers["x-ratelimit-remaining-requests"] == "0" and int(err.headers["retry-after"]) >= 15
    assert p.key_id in str(err)


def test_tokens_per_minute_and_release_corrects_count(make_limiter):
    lim, p = make_limiter(), principal(tpm=1000)
    a = lim.acquire(p, est_tokens=600)
    assert a.headers["x-ratelimit-remaining-tokens"] == "400"
    assert "x-ratelimit-limit-requests" not in a.headers  # no rpm limit set
    with pytest.raises(RateLimitError) as info:
        lim.acquire(p, est_tokens=500)
    assert "tokens-per-minute limit (1000)" in str(info.value) and info.value.retry_after > 5
    a.release(100)  # used 100, not the estimated 600: 500 tokens come back
    a.release(0)  # idempotent
    b = lim.acquire(p, est_tokens=800)
    assert 90 <= int(b.headers["x-ratelimit-remaining-tokens"]) <= 110
    with pytest.raises(RateLimitError, match="more than the tokens-per-minute limit"):
        lim.acquire(p, est_tokens=5000)


def test_concurrency_slots_are_freed_by_release(make_limiter):
    lim, p = make_limiter(), principal(conc=2)
    a, b = lim.acquire(p, est_tokens=1), lim.acquire(p, est_tokens=1)
    with pytest.raises(RateLimitError, match="concurrent-request limit") as info:
        lim.acquire(p, est_tokens=1)
    assert info.value.retry_after > 0 and info.value.headers["retry-after"] == "1"
    a.release(1)
    c = lim.acquire(p, est_tokens=1)
    for lease in (b, c):
        lease.release(1)


def test_limits_are_shared_between_workers(make_limiter):
    p = principal(rpm=20, conc=50)
    workers = [make_limiter(), make_limiter()]
    granted, rejected, lock = [], [], threading.Lock()

    def hammer(lim):
        for _ in range(15):
            try:
                lease = lim.acquire(p, est_tokens=1)
            except RateLimitError:
                with lock:
                    rejected.append(1)
            else:
                with lock:
                    granted.append(lease)

    threads = [threading.Thread(target=hammer, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 20 and len(rejected) == 10  # one budget for both workers, never more
    with pytest.raises(RateLimitError):
        workers[0].acquire(p, est_tokens=1)


def test_throttled_key_gets_scaled_limits(make_limiter):
    lim = make_limiter()
    p = principal(rpm=30, tpm=10_000, conc=10, state=KeyState.THROTTLED)  # factor 0.1 → rpm 3, tpm 1000, conc 1
    lease = lim.acquire(p, est_tokens=100)
    assert lease.headers["x-ratelimit-limit-requests"] == "3" and lease.headers["x-ratelimit-limit-tokens"] == "1000"
    with pytest.raises(RateLimitError, match="throttled.*concurrent-request limit \\(1\\)"):
        lim.acquire(p, est_tokens=100)


def test_unlimited_principal_needs_no_state(make_limiter):
    lease = make_limiter().acquire(principal(), est_tokens=10 ** 9)
    assert lease.headers == {}
    lease.release(5)


def test_expired_leases_do_not_leak_slots_db(tmp_path):
    url = f"sqlite:///{tmp_path / 'l.sqlite'}"
    engine = make_engine(url)
    upgrade_database(engine)
    clock = _Clock()
    lim = DatabaseRateLimiter(engine, lease_ttl=30, clock=clock)
    p = principal(rpm=60, conc=1)
    lim.acquire(p, est_tokens=1)  # a worker crashes and never releases this lease
    with pytest.raises(RateLimitError, match="concurrent"):
        lim.acquire(p, est_tokens=1)
    clock.now += 31
    lim.acquire(p, est_tokens=1).release(1)
    # the request bucket refills continuously: 60 rpm = one per second
    clock.now += 1
    p2 = principal(rpm=2)
    lim.acquire(p2, est_tokens=1), lim.acquire(p2, est_tokens=1)
    with pytest.raises(RateLimitError) as info:
        lim.acquire(p2, est_tokens=1)
    assert info.value.retry_after == pytest.approx(30)
    clock.now += 30
    assert lim.acquire(p2, est_tokens=1).headers["x-ratelimit-remaining-requests"] == "0"


@pytest.mark.redis
def test_expired_leases_do_not_leak_slots_redis(redis_url):
    lim = RedisRateLimiter.from_url(redis_url, prefix=f"distillscope-test:{uuid.uuid4().hex}:", lease_ttl=0.3)
    p = principal(conc=1)
    lim.acquire(p, est_tokens=1)  # never released
    with pytest.raises(RateLimitError, match="concurrent"):
        lim.acquire(p, est_tokens=1)
    time.sleep(0.4)
    lim.acquire(p, est_tokens=1).release(1)


def test_make_rate_limiter_picks_backend(tmp_path, monkeypatch):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.sqlite'}")
    assert isinstance(make_rate_limiter(load_settings(), engine), DatabaseRateLimiter)
    monkeypatch.setenv("DISTILLSCOPE_REDIS_URL", "redis://127.0.0.1:1/0")
    lim = make_rate_limiter(load_settings(), engine)
    assert isinstance(lim, RedisRateLimiter)
    with pytest.raises(GatewayError) as info:  # nothing listens on port 1
        lim.acquire(principal(rpm=1), est_tokens=1)
    assert info.value.code == "rate_limiter_unavailable"


def test_format_reset_matches_openai_style():
    assert [format_reset(s) for s in (0.02, 1.5, 6.0, 360.0, 61.2)] == ["20ms", "1.5s", "6s", "6m0s", "1m2s"]


def _worker(kind: str, url: str, prefix: str, key_id: str, n: int, out) -> None:  # runs in a child process
    lim = (DatabaseRateLimiter(make_engine(url)) if kind == "db"
           else RedisRateLimiter.from_url(url, prefix=prefix))
    p = principal(rpm=25, key_id=key_id)
    ok = 0
    for _ in range(n):
        try:
            lim.acquire(p, est_tokens=1)
            ok += 1
        except RateLimitError:
            pass
    out.put(ok)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["db", pytest.param("redis", marks=pytest.mark.redis)])
def test_limits_hold_across_worker_processes(kind, tmp_path, request):
    if kind == "db":
        url, prefix = f"sqlite:///{tmp_path / 'mp.sqlite'}", ""
        upgrade_database(make_engine(url))
    else:
        url, prefix = request.getfixturevalue("redis_url"), f"distillscope-test:{uuid.uuid4().hex}:"
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    key_id = uuid.uuid4().hex[:12]
    procs = [ctx.Process(target=_worker, args=(kind, url, prefix, key_id, 20, out)) for _ in range(3)]
    for pr in procs:
        pr.start()
    results = [out.get(timeout=120) for _ in procs]
    for pr in procs:
        pr.join(timeout=30)
    assert sum(results) == 25  # 60 attempts from three processes, one shared budget of 25


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_limiter_skips_disk_flush_but_the_log_engine_does_not(kind, tmp_path, request):
    import sqlalchemy as sa

    engine = make_engine(_db_url(kind, tmp_path, request))
    upgrade_database(engine)
    lim = DatabaseRateLimiter(engine)
    query = "PRAGMA synchronous" if kind == "sqlite" else "SHOW synchronous_commit"
    with engine.connect() as main, lim.engine.connect() as limiter:
        durable, fast = main.execute(sa.text(query)).scalar(), limiter.execute(sa.text(query)).scalar()
    assert (durable, fast) == ((2, 1) if kind == "sqlite" else ("on", "off"))  # FULL/NORMAL, on/off
    assert lim.acquire(principal(rpm=1), est_tokens=1).headers["x-ratelimit-remaining-requests"] == "0"
    lim.engine.dispose()
    engine.dispose()
