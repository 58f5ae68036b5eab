"""Operator features: end-user attribution, key expiry, monthly token budgets and the spend report,
the key cache (revocation on the next request, across workers), migration 0001 -> 0002 with data."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from alembic import command
from fastapi.testclient import TestClient

from distillscope.cli import main
from distillscope.errors import AuthError, ConfigError
from distillscope.gateway import AccountStore, Limits, RequestLog, StubBackend, create_app, make_engine
from distillscope.gateway.budgets import spend_report
from distillscope.gateway.db import alembic_config, upgrade_database
from distillscope.settings import load_settings

CHAT = "/v1/chat/completions"
MSG = [{"role": "user", "content": "four words right here"}]
ADMIN = {"Authorization": "Bearer operator-admin-token-123456"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request, tmp_path):
    return f"sqlite:///{tmp_path / 'gw.sqlite'}" if request.param == "sqlite" else request.getfixturevalue(
        "postgres_url")


@pytest.fixture
def gw(tmp_path):
    app = create_app(load_settings(home=tmp_path, admin_token=ADMIN["Authorization"][7:]), backend=StubBackend())
    with TestClient(app) as client:
        state = app.state.gateway
        state.store.create_account("reseller", limits=Limits(rpm=None, tpm=None, max_concurrent=None))
        key, _ = state.store.create_key("reseller")
        yield client, state, {"Authorization": f"Bearer {key}"}


def test_upgrade_from_0001_keeps_rows_and_adds_the_new_columns(url):
    engine = make_engine(url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0001")
        conn.execute(sa.text("INSERT INTO request_log (request_id, ts, endpoint, logprobs, logit_bias, stream, "
                             "prompt_tokens, completion_tokens, status) VALUES ('old', :ts, '/v1/chat/completions', "
                             "0, false, false, 3, 4, 200)"), {"ts": datetime(2026, 1, 1, tzinfo=timezone.utc)})
    upgrade_database(engine)
    (row,) = RequestLog(engine).query()
    assert row.request_id == "old" and row.end_user is None and row.prompt_tokens == 3
    cols = {c["name"] for c in sa.inspect(engine).get_columns("api_keys")}
    assert "expires_at" in cols
    engine.dispose()


def test_the_openai_user_field_is_recorded_per_request_and_exported(gw, tmp_path):
    client, state, headers = gw
    for user in ("customer-1", "customer-2", None):
        body = {"model": "stub-echo", "messages": MSG, **({"user": user} if user else {})}
        assert client.post(CHAT, json=body, headers=headers).status_code == 200
    assert client.post(CHAT, json={"model": "nope", "messages": MSG, "user": "customer-3"},
                       headers=headers).status_code == 404
    assert [r.end_user for r in state.request_log.query()] == ["customer-1", "customer-2", None, "customer-3"]
    out = tmp_path / "log.parquet"
    state.request_log.export(out)
    assert pq.read_table(out).column("end_user").to_pylist() == ["customer-1", "customer-2", None, "customer-3"]


def test_an_expired_key_is_refused_and_logged(gw):
    client, state, _ = gw
    key, info = state.store.create_key("reseller", expires_at=datetime.now(timezone.utc) + timedelta(seconds=1))
    headers = {"Authorization": f"Bearer {key}"}
    assert client.post(CHAT, json={"model": "stub-echo", "messages": MSG}, headers=headers).status_code == 200
    time.sleep(1.1)
    resp = client.post(CHAT, json={"model": "stub-echo", "messages": MSG}, headers=headers)
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "key_expired"
    assert state.request_log.query()[-1].key_id == info.key_id  # the refusal is attributed
    with pytest.raises(ConfigError, match="past"):
        state.store.create_key("reseller", expires_at=datetime.now(timezone.utc) - timedelta(seconds=1))
    resp = client.post("/admin/v1/accounts/reseller/keys", headers=ADMIN, json={"expires_at": "2999-01-01T00:00:00Z"})
    assert resp.status_code == 201 and resp.json()["key"]["expires_at"].startswith("2999-01-01")


def test_cli_key_expiry(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DISTILLSCOPE_HOME", str(tmp_path))
    assert main(["accounts", "create", "acme", "--expires", "30d"]) == 0
    store = AccountStore(make_engine(f"sqlite:///{tmp_path / 'gateway.sqlite'}"))
    (key,) = store.get_account("acme").keys
    assert timedelta(days=29) < key.expires_at - datetime.now(timezone.utc) <= timedelta(days=30)
    assert main(["accounts", "add-key", "acme", "--expires", "soon"]) == 2
    assert "not a duration" in capsys.readouterr().err


def test_a_spent_monthly_budget_refuses_with_insufficient_quota(gw):
    client, state, headers = gw
    state.store.set_budget("reseller", 15, actor="test")
    codes = [client.post(CHAT, json={"model": "stub-echo", "messages": MSG}, headers=headers).status_code
             for _ in range(4)]
    assert codes == [200, 200, 429, 429]  # each request: 4 prompt + 5 completion tokens (stub words): 9 < 15 <= 18
    err = client.post(CHAT, json={"model": "stub-echo", "messages": MSG}, headers=headers).json()["error"]
    assert err["code"] == "insufficient_quota" and "monthly budget of 15" in err["message"]
    (row,) = [r for r in spend_report(state.store, state.request_log) if r.account_name == "reseller"]
    assert (row.total_tokens, row.monthly_token_budget, row.budget_left) == (18, 15, 0)
    assert row.requests == 5  # refusals are counted as requests, with no tokens
    spend = client.get("/admin/v1/spend", headers=ADMIN).json()["data"]
    assert spend[0]["account_name"] == "reseller" and spend[0]["total_tokens"] == 18
    resp = client.put("/admin/v1/accounts/reseller/budget", headers=ADMIN, json={"monthly_tokens": None})
    assert resp.status_code == 200 and resp.json()["monthly_token_budget"] is None
    assert client.post(CHAT, json={"model": "stub-echo", "messages": MSG}, headers=headers).status_code == 200
    assert client.put("/admin/v1/accounts/reseller/budget", headers=ADMIN,
                      json={"monthly_tokens": True}).status_code == 400
    assert client.get("/admin/v1/spend?period=2026-13", headers=ADMIN).status_code == 400


def test_cli_budget_and_spend(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DISTILLSCOPE_HOME", str(tmp_path))
    assert main(["accounts", "create", "acme", "--no-key"]) == 0
    assert main(["accounts", "budget", "acme", "1000"]) == 0
    assert main(["accounts", "spend", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"monthly_token_budget": 1000' in out and '"budget_left": 1000' in out
    assert main(["accounts", "budget", "acme", "0"]) == 2
    assert main(["accounts", "spend", "--period", "December"]) == 2


def test_revocation_reaches_a_cached_key_on_the_next_request_across_workers(url):
    engine_a, engine_b = make_engine(url), make_engine(url)
    upgrade_database(engine_a)
    worker_a, worker_b = AccountStore(engine_a), AccountStore(engine_b)  # two processes' stores
    worker_b.create_account("acme")
    key, info = worker_b.create_key("acme")
    assert worker_a.authenticate(key).key_id == info.key_id
    assert worker_a.authenticate(key).key_id == info.key_id  # now served from worker A's cache
    worker_b.set_key_state(info.key_id, "suspended", reason="test", actor="test")
    with pytest.raises(AuthError) as exc:
        worker_a.authenticate(key)
    assert exc.value.code == "key_suspended"
    worker_b.set_limits("acme", Limits(rpm=7), actor="test")
    worker_b.set_key_state(info.key_id, "active", reason="test", actor="test")
    assert worker_a.authenticate(key).limits.rpm == 7  # limit changes reach the cache too
    engine_a.dispose()
    engine_b.dispose()


@pytest.mark.parametrize("kind", ["db", pytest.param("redis", marks=pytest.mark.redis)])
def test_per_model_limits_apply_on_top_of_the_key_limits(tmp_path, kind, request):
    extra = {"redis_url": request.getfixturevalue("redis_url")} if kind == "redis" else {}
    backend = StubBackend(model_ids=("small", "org/large"))
    app = create_app(load_settings(home=tmp_path, admin_token=ADMIN["Authorization"][7:], **extra), backend=backend)
    with TestClient(app) as client:
        state = app.state.gateway
        state.store.create_account("acme", limits=Limits(rpm=100, tpm=None, max_concurrent=None))
        headers = {"Authorization": f"Bearer {state.store.create_key('acme')[0]}"}
        resp = client.put("/admin/v1/accounts/acme/model-limits/org/large", headers=ADMIN, json={"rpm": 2})
        assert resp.status_code == 200 and resp.json()["model_limits"]["org/large"]["rpm"] == 2

        def chat(model: str) -> int:
            return client.post(CHAT, json={"model": model, "messages": MSG}, headers=headers).status_code
        assert [chat("org/large") for _ in range(3)] == [200, 200, 429]
        assert [chat("small") for _ in range(3)] == [200, 200, 200]  # other models: the key's limits only
        err = client.post(CHAT, json={"model": "org/large", "messages": MSG}, headers=headers).json()["error"]
        assert "model 'org/large'" in err["message"] and err["code"] == "rate_limit_exceeded"
        assert client.delete("/admin/v1/accounts/acme/model-limits/org/large", headers=ADMIN).status_code == 200
        assert chat("org/large") == 200  # removed: the next request sees it (key cache invalidated)


def test_cli_model_limits(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DISTILLSCOPE_HOME", str(tmp_path))
    assert main(["accounts", "create", "acme", "--no-key"]) == 0
    assert main(["accounts", "model-limits", "acme", "smollm2", "--rpm", "5"]) == 0
    assert main(["accounts", "show", "acme", "--json"]) == 0
    assert '"model_limits": {"smollm2": {"rpm": 5, "tpm": null, "max_concurrent": null}}' in capsys.readouterr().out
    assert main(["accounts", "model-limits", "acme", "smollm2", "--remove", "--rpm", "1"]) == 2
    assert main(["accounts", "model-limits", "acme", "smollm2", "--remove"]) == 0
