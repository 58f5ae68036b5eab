"""Gateway storage: migrations, accounts and keys, authentication, audit, enforcement, request log."""

from __future__ import annotations

import json
import multiprocessing
import os
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from distillscope.errors import AuthError, ConfigError, GatewayError
from distillscope.gateway.accounts import AccountStore, KeyState, Limits
from distillscope.gateway.db import make_engine, upgrade_database
from distillscope.gateway.enforcement import EnforcementAction, apply_actions
from distillscope.gateway.requestlog import EXPORT_SCHEMA, RequestLog, RequestRecord
from distillscope.gateway.tables import metadata


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, tmp_path):
    url = (f"sqlite:///{tmp_path / 'gw.sqlite'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))
    eng = make_engine(url)
    upgrade_database(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_engine(tmp_path):
    eng = make_engine(f"sqlite:///{tmp_path / 'gw.sqlite'}")
    upgrade_database(eng)
    yield eng
    eng.dispose()


# -- migrations --------------------------------------------------------------------------------
def test_migrations_from_blank_match_models_and_are_idempotent(engine):
    upgrade_database(engine)  # a second upgrade is a no-op
    with engine.connect() as conn:
        assert conn.execute(sa.text("select version_num from alembic_version")).scalars().all() == ["0002"]
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
        assert diff == []
        tables = set(sa.inspect(conn).get_table_names())
    assert {"accounts", "api_keys", "enforcement_audit", "request_log"} <= tables
    indexes = {ix["name"]: ix["column_names"] for ix in sa.inspect(engine).get_indexes("request_log")}
    assert indexes["ix_request_log_key_ts"] == ["key_id", "ts"]
    assert indexes["ix_request_log_account_ts"] == ["account_id", "ts"]


def test_sqlite_engine_is_durable_wal(sqlite_engine):
    with sqlite_engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_make_engine_rejects_unknown_backends():
    with pytest.raises(ConfigError, match="mysql"):
        make_engine("mysql://u@h/db")
    with pytest.raises(ConfigError, match="not a valid"):
        make_engine("not a url")


# -- accounts, keys, authentication ------------------------------------------------------------
def test_key_lifecycle_and_authenticate_codes(engine):
    store = AccountStore(engine)
    acct = store.create_account("acme", limits=Limits(rpm=5, tpm=500, max_concurrent=2))
    plaintext, key = store.create_key("acme")
    assert plaintext.startswith(f"ds-{key.key_id}-") and len(plaintext) > 40
    p = store.authenticate(plaintext)
    assert (p.account_id, p.account_name, p.key_id, p.state) == (acct.account_id, "acme", key.key_id, KeyState.ACTIVE)
    assert p.limits == Limits(rpm=5, tpm=500, max_concurrent=2)

    def code_of(api_key):
        with pytest.raises(AuthError) as info:
            store.authenticate(api_key)
        assert plaintext not in str(info.value)
        return info.value.code

    assert code_of(None) == "missing_api_key"
    assert code_of("  ") == "missing_api_key"
    assert code_of("sk-not-ours") == "invalid_api_key"
    assert code_of(plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")) == "invalid_api_key"
    assert code_of(f"ds-{'0' * 12}-{plaintext.split('-', 2)[2]}") == "invalid_api_key"

    store.set_key_state(key.key_id, "throttled", reason="bursty", actor="ops")
    assert store.authenticate(plaintext).state is KeyState.THROTTLED
    store.set_key_state(key.key_id, KeyState.SUSPENDED, reason="looks like a harvest", actor="ops")
    assert code_of(plaintext) == "key_suspended"
    store.set_key_state(key.key_id, KeyState.ACTIVE, reason="false alarm", actor="ops")
    assert store.authenticate(plaintext).state is KeyState.ACTIVE

    store.set_account_state("acme", "suspended", reason="campaign", actor="ops")
    assert code_of(plaintext) == "account_suspended"
    store.set_account_state(acct.account_id, "throttled", reason="campaign, probation", actor="ops")
    assert store.authenticate(plaintext).state is KeyState.THROTTLED  # the account's state applies to its keys
    store.set_account_state("acme", "revoked", reason="confirmed", actor="ops")
    assert code_of(plaintext) == "key_revoked"  # revoking the account revoked every key
    with pytest.raises(GatewayError) as info:
        store.set_account_state("acme", "active", reason="undo", actor="ops")
    assert info.value.code == "account_revoked"


def test_revocation_applies_on_the_very_next_request_from_another_store(engine, tmp_path):
    gateway_store, admin_store = AccountStore(engine), AccountStore(make_engine(str(engine.url)) if
                                                                    engine.dialect.name == "sqlite" else engine)
    gateway_store.create_account("acme")
    plaintext, key = admin_store.create_key("acme")
    assert gateway_store.authenticate(plaintext).key_id == key.key_id  # warm any connection pool
    admin_store.set_key_state(key.key_id, "revoked", reason="leaked", actor="ops")
    with pytest.raises(AuthError) as info:
        gateway_store.authenticate(plaintext)
    assert info.value.code == "key_revoked"
    with pytest.raises(GatewayError, match="revoked"):
        admin_store.set_key_state(key.key_id, "active", reason="oops", actor="ops")


def test_rotate_issues_new_key_and_revokes_old(engine):
    store = AccountStore(engine)
    store.create_account("acme")
    old_plain, old = store.create_key("acme")
    new_plain, new = store.rotate_key(old.key_id, actor="ops")
    assert new.key_id != old.key_id and new.account_id == old.account_id
    assert store.authenticate(new_plain).key_id == new.key_id
    with pytest.raises(AuthError) as info:
        store.authenticate(old_plain)
    assert info.value.code == "key_revoked"
    states = {k.key_id: k.state for k in store.get_account("acme").keys}
    assert states == {old.key_id: KeyState.REVOKED, new.key_id: KeyState.ACTIVE}
    store.set_key_state(new.key_id, "suspended", reason="harvest", actor="guard")
    _, newer = store.rotate_key(new.key_id, actor="ops")
    assert newer.state is KeyState.SUSPENDED  # rotating cannot lift a suspension
    assert store.get_key(newer.key_id).state is KeyState.SUSPENDED


def test_plaintext_keys_are_never_stored(sqlite_engine, tmp_path):
    store = AccountStore(sqlite_engine)
    store.create_account("acme")
    plains = [store.create_key("acme")[0] for _ in range(3)]
    plains.append(store.rotate_key(plains[0].split("-")[1], actor="ops")[0])
    sqlite_engine.dispose()
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("gw.sqlite*"))
    assert blob  # the database and its WAL were read
    for plain in plains:
        secret = plain.split("-", 2)[2]
        assert plain.encode() not in blob and secret.encode() not in blob
        assert plain.split("-")[1].encode() in blob  # the public key id is stored


def test_account_validation_and_lookup_errors(sqlite_engine):
    store = AccountStore(sqlite_engine)
    store.create_account("acme")
    with pytest.raises(GatewayError) as info:
        store.create_account("acme")
    assert info.value.code == "account_exists"
    for bad in ("", "has space", "acct_fake", "x" * 65):
        with pytest.raises(ConfigError, match="account name"):
            store.create_account(bad)
    with pytest.raises(GatewayError) as info:
        store.get_account("nobody")
    assert info.value.code == "account_not_found" and "nobody" in str(info.value)
    with pytest.raises(ConfigError, match="reason"):
        store.set_account_state("acme", "suspended", reason=" ", actor="ops")
    with pytest.raises(ConfigError, match="bogus"):
        store.set_account_state("acme", "bogus", reason="x", actor="ops")
    with pytest.raises(ConfigError, match="rpm=0"):
        Limits(rpm=0)
    with pytest.raises(ConfigError, match="throttle_factor"):
        Limits(throttle_factor=2.0)


def test_limits_throttled_scaling_and_set_limits(sqlite_engine):
    lim = Limits(rpm=60, tpm=1000, max_concurrent=4, throttle_factor=0.1)
    assert lim.effective(KeyState.ACTIVE) is lim
    assert lim.effective(KeyState.THROTTLED) == Limits(rpm=6, tpm=100, max_concurrent=1, throttle_factor=0.1)
    store = AccountStore(sqlite_engine)
    store.create_account("acme")
    store.set_limits("acme", Limits(rpm=None, tpm=10, max_concurrent=None), actor="ops")
    assert store.get_account("acme").limits == Limits(rpm=None, tpm=10, max_concurrent=None)


def test_audit_records_every_change_with_reason_actor_time(engine):
    store = AccountStore(engine)
    acct = store.create_account("acme")
    _, key = store.create_key("acme", actor="admin-api")
    store.set_key_state(key.key_id, "throttled", reason="burst", actor="guard:rate", evidence={"score": 0.93})
    store.set_limits("acme", Limits(rpm=1), actor="ops")
    entries = store.audit_log(target="acme")
    assert [(e.target_kind, e.action) for e in entries] == [
        ("account", "limits"), ("key", "state"), ("key", "create"), ("account", "create")]
    change = entries[1]
    assert (change.old_state, change.new_state, change.reason, change.actor) == (
        KeyState.ACTIVE, KeyState.THROTTLED, "burst", "guard:rate")
    assert change.evidence == {"score": 0.93}
    assert change.ts.tzinfo is not None and abs(datetime.now(timezone.utc) - change.ts) < timedelta(minutes=1)
    assert entries[0].evidence["new"]["rpm"] == 1
    assert [e.target_id for e in store.audit_log(target=key.key_id)] == [key.key_id, key.key_id]
    assert len(store.audit_log(limit=2)) == 2
    assert acct.account_id in {e.target_id for e in store.audit_log()}


def test_apply_actions_only_escalates(sqlite_engine):
    store = AccountStore(sqlite_engine)
    store.create_account("acme")
    _, key = store.create_key("acme")
    act = lambda kind, target, state: EnforcementAction(kind, target, state, reason="detector", actor="guard",  # noqa: E731
                                                        evidence={"p": 1e-9})
    applied = apply_actions(store, [act("key", key.key_id, "throttled"), act("key", key.key_id, "throttled"),
                                    act("key", "000000000000", "suspended"), act("account", "acme", "suspended")])
    assert [(a.target_kind, a.state) for a in applied] == [("key", KeyState.THROTTLED),
                                                           ("account", KeyState.SUSPENDED)]
    store.set_key_state(key.key_id, "revoked", reason="manual", actor="ops")
    assert apply_actions(store, [act("key", key.key_id, "suspended")]) == []  # never downgrades revoked
    assert store.get_key(key.key_id).state is KeyState.REVOKED
    with pytest.raises(ConfigError, match="active"):
        act("key", key.key_id, "active")
    with pytest.raises(ConfigError, match="kind"):
        act("user", key.key_id, "revoked")


# -- request log -------------------------------------------------------------------------------
T0 = datetime(2026, 1, 10, 12, 0, tzinfo=timezone.utc)


def _record(i: int, *, ts=None, account="acct_a", key="aaaaaaaaaaaa", status=200, **kw) -> RequestRecord:
    return RequestRecord(
        request_id=f"req-{i:05d}", ts=ts or T0 + timedelta(minutes=i), endpoint="/v1/chat/completions", status=status,
        account_id=account, key_id=key, client_ip="10.0.0.7", user_agent="openai-python/1.0", model="smollm2",
        params={"temperature": 0.7, "max_tokens": 32, "logprobs": True, "top_logprobs": 5, "logit_bias": {"5": 1}},
        temperature=0.7, max_tokens=32, logprobs=5, logit_bias=True, stream=False,
        prompt=json.dumps([{"role": "user", "content": f"question {i} — ünïcode"}]), completion=f"answer {i}",
        prompt_tokens=10 + i, completion_tokens=20, latency_ms=12.5, watermark_key_id="wm-1234", **kw)


def test_request_log_write_query_count_usage(engine):
    rl = RequestLog(engine)
    for i in range(6):
        rl.write(_record(i))
    rl.write(_record(6, account="acct_b", key="bbbbbbbbbbbb", status=429, error="rate_limit_exceeded"))
    rl.write(_record(7, account=None, key=None, status=401, error="invalid_api_key",
                     ts=T0 + timedelta(minutes=7, hours=-2)))  # a different offset is stored as UTC
    got = rl.query(key_id="aaaaaaaaaaaa", since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=4))
    assert [r.request_id for r in got] == ["req-00002", "req-00003"]
    assert got[0] == _record(2)
    assert rl.count() == 8 and rl.count(rejected=True) == 2 and rl.count(account_id="acct_b") == 1
    usage = {u.account_id: u for u in rl.usage()}
    assert (usage["acct_a"].requests, usage["acct_a"].rejected, usage["acct_a"].prompt_tokens) == (6, 0, 75)
    assert (usage["acct_b"].rejected, usage[None].rejected, usage[None].requests) == (1, 1, 1)
    assert usage[None].first_ts == T0 + timedelta(minutes=7, hours=-2)
    with pytest.raises(GatewayError, match="timezone-aware"):
        rl.write(_record(9, ts=datetime(2026, 1, 1)))


class _RecordingProgress:
    def __init__(self) -> None:
        self.total, self.advances = None, []

    @contextmanager
    def task(self, description, total=None):
        self.total = total
        yield self

    def advance(self, n=1):
        self.advances.append(n)

    def update(self, *, total=None, description=None):
        pass


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_request_log_export_round_trip(engine, tmp_path, fmt, monkeypatch):
    import distillscope.gateway.requestlog as requestlog

    monkeypatch.setattr(requestlog, "EXPORT_CHUNK_ROWS", 3)  # several chunks
    rl = RequestLog(engine)
    records = [_record(i) for i in range(8)]
    for r in records:
        rl.write(r)
    out = tmp_path / f"log.{fmt}"
    progress = _RecordingProgress()
    n = rl.export(out, since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=7), format=fmt,
                  progress=progress)
    assert n == 6 and progress.total == 6 and progress.advances == [3, 3]
    if fmt == "parquet":
        table = pq.read_table(out)
        assert table.schema.equals(EXPORT_SCHEMA)
        rows = table.to_pylist()
    else:
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        for row in rows:
            row["ts"] = datetime.fromisoformat(row["ts"])
    assert [r["request_id"] for r in rows] == [f"req-{i:05d}" for i in range(1, 7)]
    for row, rec in zip(rows, records[1:7], strict=True):
        assert json.loads(row.pop("params")) == rec.params
        expected = {k: v for k, v in vars(rec).items() if k != "params"}
        assert row == expected
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_export_is_atomic_and_validates_format(sqlite_engine, tmp_path):
    rl = RequestLog(sqlite_engine)
    rl.write(_record(0))
    out = tmp_path / "log.parquet"
    out.write_text("previous export")
    with pytest.raises(ConfigError, match="xml"):
        rl.export(out, format="xml")
    with pytest.raises(ConfigError, match="timezone"):
        rl.export(out, since=datetime(2026, 1, 1))
    assert out.read_text() == "previous export" and not list(tmp_path.glob(".*tmp"))
    assert rl.export(out) == 1 and pq.read_table(out).num_rows == 1


def test_retention_redacts_then_deletes(engine):
    rl = RequestLog(engine)
    now = T0 + timedelta(days=400)
    for i, days in enumerate([380, 40, 5]):  # old, mid, new
        rl.write(_record(i, ts=now - timedelta(days=days)))
    for i in range(3, 8):
        rl.write(_record(i, ts=now - timedelta(days=500 + i)))
    res = rl.apply_retention(redact_prompts_after=timedelta(days=30), delete_after=timedelta(days=365), now=now,
                             batch_size=2)  # several transactions
    assert (res.redacted, res.deleted) == (1, 6)
    rows = {r.request_id: r for r in rl.query()}
    assert set(rows) == {"req-00001", "req-00002"}
    assert rows["req-00001"].prompt is None and rows["req-00001"].completion is None
    assert rows["req-00001"].prompt_tokens == 11  # metadata stays for analytics
    assert rows["req-00002"].prompt is not None
    again = rl.apply_retention(redact_prompts_after=timedelta(days=30), delete_after=timedelta(days=365), now=now)
    assert (again.redacted, again.deleted) == (0, 0)
    with pytest.raises(ConfigError, match="positive"):
        rl.apply_retention(delete_after=timedelta(0))


def _write_then_crash(url: str, n: int, ack) -> None:  # runs in a child process
    rl = RequestLog(make_engine(url))
    for i in range(n):
        rl.write(_record(i))
        ack.send(f"req-{i:05d}")  # acknowledged (synchronously) only after write() returned
    os._exit(9)  # die without closing the engine, flushing or committing anything else


@pytest.mark.slow
def test_a_crash_loses_no_acknowledged_request(tmp_path):
    url = f"sqlite:///{tmp_path / 'crash.sqlite'}"
    upgrade_database(make_engine(url))
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_write_then_crash, args=(url, 25, sender))
    proc.start()
    acked = []
    while len(acked) < 25 and receiver.poll(60):
        acked.append(receiver.recv())
    proc.join(timeout=60)
    assert proc.exitcode == 9
    stored = {r.request_id for r in RequestLog(make_engine(url)).query()}
    assert set(acked) <= stored and len(acked) == 25


@pytest.mark.parametrize("kind", ["key", "account"])
def test_concurrent_guards_only_ever_escalate(engine, kind):
    import threading

    store = AccountStore(engine)
    acct = store.create_account("acme")
    _, key = store.create_key("acme")
    target = key.key_id if kind == "key" else acct.account_id
    states = ["throttled", "suspended", "revoked", "throttled", "suspended", "throttled"] * 2
    threads = [threading.Thread(target=apply_actions, args=(store, [EnforcementAction(
        kind, target, st, reason=f"guard {i}", actor=f"guard-{i}")])) for i, st in enumerate(states)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    changes = [e for e in reversed(store.audit_log(target=target, limit=100)) if e.action == "state"]
    severities = [e.new_state.severity for e in changes]
    assert severities == sorted(set(severities)) and changes[-1].new_state is KeyState.REVOKED
    assert all(e.old_state.severity < e.new_state.severity for e in changes)


def test_client_controlled_values_never_break_logging(engine):
    rl = RequestLog(engine)
    rec = _record(1, account=None, key="k" * 80, status=400, error="upstream_" + "x" * 200)
    rec.model, rec.prompt, rec.user_agent = "m" * 1000, "before\x00after", "ua\x00"
    rl.write(rec)
    (got,) = rl.query()
    assert got.prompt == "before\ufffdafter" and got.user_agent == "ua\ufffd"
    assert (len(got.model), len(got.key_id), len(got.error)) == (256, 32, 64)
    assert got.error.startswith("upstream_x")


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_workers_starting_together_migrate_once(kind, tmp_path, request):
    import threading

    url = f"sqlite:///{tmp_path / 'race.sqlite'}" if kind == "sqlite" else request.getfixturevalue("postgres_url")
    engines = [make_engine(url) for _ in range(4)]
    errors: list[BaseException] = []

    def start(engine):
        try:
            upgrade_database(engine)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with engines[0].connect() as conn:
        assert conn.execute(sa.text("select version_num from alembic_version")).scalars().all() == ["0002"]
    for e in engines:
        e.dispose()


def test_per_key_and_per_account_range_queries_use_their_indexes(sqlite_engine):
    from sqlalchemy.dialects import sqlite as sqlite_dialect

    from distillscope.gateway.tables import request_log

    rl = RequestLog(sqlite_engine)
    for i in range(50):
        rl.write(_record(i, key=f"{i % 5:012d}", account=f"acct_{i % 3}"))
    lo, hi = T0, T0 + timedelta(minutes=30)
    for column, value, index in (("key_id", "000000000001", "ix_request_log_key_ts"),
                                 ("account_id", "acct_1", "ix_request_log_account_ts")):
        q = sa.select(request_log).where(request_log.c[column] == value, request_log.c.ts >= lo,
                                         request_log.c.ts < hi)
        sql = str(q.compile(dialect=sqlite_dialect.dialect(), compile_kwargs={"literal_binds": True}))
        with sqlite_engine.connect() as conn:
            plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
        assert index in plan, plan


def test_upgrade_errors_are_readable(sqlite_engine, capsys, monkeypatch):
    with sqlite_engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'from_the_future'"))
    with pytest.raises(GatewayError) as info:
        upgrade_database(sqlite_engine)
    assert info.value.code == "database_schema_unknown" and "upgrade distillscope" in str(info.value)
    with pytest.raises(GatewayError) as info:
        upgrade_database(make_engine("postgresql://nobody:s3cret-pw@127.0.0.1:1/none"))
    assert info.value.code == "database_unavailable" and "s3cret-pw" not in str(info.value)
    monkeypatch.setenv("DISTILLSCOPE_DATABASE_URL", "postgresql://nobody:s3cret-pw@127.0.0.1:1/none")
    from distillscope.cli import main

    assert main(["accounts", "list"]) == 2
    err = capsys.readouterr().err
    assert "cannot migrate" in err and "s3cret-pw" not in err and "Traceback" not in err
