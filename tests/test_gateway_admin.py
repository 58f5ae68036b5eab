"""The admin HTTP API (FastAPI TestClient) and the `accounts` / `logs` CLI end to end."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone

import pyarrow.parquet as pq
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from distillscope.cli import main
from distillscope.errors import AuthError
from distillscope.gateway.accounts import AccountStore, KeyState
from distillscope.gateway.admin import admin_router
from distillscope.gateway.db import make_engine, upgrade_database
from distillscope.gateway.requestlog import RequestLog, RequestRecord

ADMIN_TOKEN = "admin-token-5f1c9e0d7a"


@pytest.fixture
def stores(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'admin.sqlite'}")
    upgrade_database(engine)
    yield AccountStore(engine), RequestLog(engine)
    engine.dispose()


def _client(stores, token: str | None = ADMIN_TOKEN) -> TestClient:
    app = FastAPI()
    app.include_router(admin_router(stores[0], stores[1], SecretStr(token) if token else None))
    return TestClient(app)


AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _assert_error(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["code"] == code and err["message"]
    assert ADMIN_TOKEN not in resp.text
    return err


def test_admin_requires_a_valid_token(stores):
    client = _client(stores)
    _assert_error(client.get("/admin/v1/accounts"), 401, "missing_admin_token")
    _assert_error(client.get("/admin/v1/accounts", headers={"Authorization": "Basic abc"}), 401,
                  "missing_admin_token")
    err = _assert_error(client.get("/admin/v1/accounts", headers={"Authorization": "Bearer wrong-token"}), 401,
                        "invalid_admin_token")
    assert err["type"] == "authentication_error" and "wrong-token" not in err["message"]
    _assert_error(client.post("/admin/v1/accounts", json={"name": "x"}, headers={"Authorization": "Bearer " + "a" * 9}),
                  401, "invalid_admin_token")
    assert stores[0].list_accounts() == []  # nothing happened
    assert client.get("/admin/v1/accounts", headers=AUTH).status_code == 200


def test_admin_disabled_without_token(stores):
    err = _assert_error(_client(stores, token=None).get("/admin/v1/accounts", headers=AUTH), 403, "admin_disabled")
    assert "DISTILLSCOPE_ADMIN_TOKEN" in err["message"]


def test_admin_account_and_key_lifecycle(stores):
    store, _ = stores
    client = _client(stores)
    r = client.post("/admin/v1/accounts", headers=AUTH,
                    json={"name": "acme", "limits": {"rpm": 5, "tpm": None}, "create_key": True})
    assert r.status_code == 201, r.text
    body = r.json()
    acct_id, plaintext = body["account"]["account_id"], body["api_key"]
    assert body["account"]["limits"] == {"rpm": 5, "tpm": None, "max_concurrent": 8, "throttle_factor": 0.1}
    assert store.authenticate(plaintext).account_id == acct_id
    _assert_error(client.post("/admin/v1/accounts", headers=AUTH, json={"name": "acme"}), 409, "account_exists")
    bad = _assert_error(client.post("/admin/v1/accounts", headers=AUTH, json={"name": "bad name"}), 400,
                        "invalid_request")  # the name's pattern is in the OpenAPI schema
    assert bad["param"] == "name"
    err = _assert_error(client.post("/admin/v1/accounts", headers=AUTH, json={"nme": "x"}), 400, "invalid_request")
    assert "name" in err["message"] or "nme" in err["message"]

    key2 = client.post(f"/admin/v1/accounts/{acct_id}/keys", headers=AUTH).json()
    key_id2 = key2["key"]["key_id"]
    r = client.post(f"/admin/v1/keys/{key_id2}/state", headers=AUTH,
                    json={"state": "suspended", "reason": "harvest pattern", "evidence": {"p_value": 1e-8}})
    assert r.status_code == 200 and r.json()["state"] == "suspended"
    with pytest.raises(AuthError) as info:
        store.authenticate(key2["api_key"])
    assert info.value.code == "key_suspended"
    _assert_error(client.post(f"/admin/v1/keys/{key_id2}/state", headers=AUTH, json={"state": "gone", "reason": "x"}),
                  400, "invalid_request")
    _assert_error(client.post("/admin/v1/keys/000000000000/state", headers=AUTH,
                              json={"state": "revoked", "reason": "x"}), 404, "key_not_found")

    old_id = body["key"]["key_id"]
    rot = client.post(f"/admin/v1/keys/{old_id}/rotate", headers=AUTH)
    assert rot.status_code == 201 and rot.json()["revoked_key_id"] == old_id
    assert store.authenticate(rot.json()["api_key"]).key_id == rot.json()["key"]["key_id"]
    _assert_error(client.post(f"/admin/v1/keys/{old_id}/rotate", headers=AUTH), 409, "key_revoked")

    r = client.put(f"/admin/v1/accounts/{acct_id}/limits", headers=AUTH, json={"max_concurrent": 2})
    assert r.json()["limits"] == {"rpm": 5, "tpm": None, "max_concurrent": 2, "throttle_factor": 0.1}
    _assert_error(client.put(f"/admin/v1/accounts/{acct_id}/limits", headers=AUTH, json={"rpm": 0}), 400,
                  "invalid_request")
    r = client.post("/admin/v1/accounts/acme/state", headers=AUTH, json={"state": "throttled", "reason": "probation"})
    assert r.json()["state"] == "throttled"

    # Listings and the audit never carry a key's secret.
    listing = client.get("/admin/v1/accounts", headers=AUTH)
    one = client.get("/admin/v1/accounts/acme", headers=AUTH)
    audit = client.get("/admin/v1/audit", headers=AUTH, params={"target": "acme"})
    _assert_error(client.get("/admin/v1/accounts/nobody", headers=AUTH), 404, "account_not_found")
    for resp in (listing, one, audit):
        assert resp.status_code == 200
        for secret in (plaintext, key2["api_key"], rot.json()["api_key"]):
            assert secret.split("-", 2)[2] not in resp.text
    assert [k["state"] for k in one.json()["keys"]] == ["revoked", "suspended", "active"]
    actions = [(e["target_kind"], e["action"], e["new_state"]) for e in audit.json()["data"]]
    assert ("key", "state", "suspended") in actions and ("account", "state", "throttled") in actions
    entry = next(e for e in audit.json()["data"] if e["new_state"] == "suspended")
    assert entry["actor"] == "admin-api" and entry["reason"] == "harvest pattern" and entry["evidence"] == {
        "p_value": 1e-8}


def test_admin_usage_summary(stores):
    store, rl = stores
    acct = store.create_account("acme")
    now = datetime.now(timezone.utc)
    for i, status in enumerate([200, 200, 429]):
        rl.write(RequestRecord(request_id=f"r{i}", ts=now, endpoint="/v1/completions", status=status,
                               account_id=acct.account_id, key_id="k", prompt_tokens=5, completion_tokens=7))
    rl.write(RequestRecord(request_id="bad", ts=now, endpoint="/v1/completions", status=401, client_ip="10.1.2.3",
                           error="invalid_api_key"))
    client = _client(stores)
    data = client.get("/admin/v1/usage", headers=AUTH).json()["data"]
    by = {d["account_id"]: d for d in data}
    assert (by[acct.account_id]["requests"], by[acct.account_id]["rejected"], by[acct.account_id]["account_name"]) \
        == (3, 1, "acme")
    assert by[acct.account_id]["completion_tokens"] == 21 and by[None]["rejected"] == 1
    later = (now + timedelta(hours=1)).isoformat()
    assert client.get("/admin/v1/usage", headers=AUTH, params={"since": later}).json()["data"] == []
    _assert_error(client.get("/admin/v1/usage", headers=AUTH, params={"since": "2026-01-01T00:00:00"}), 400,
                  "invalid_time")


# -- CLI -----------------------------------------------------------------------------------------
def _run(capsys, *args) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_accounts_end_to_end(capsys, caplog, isolated_home):
    caplog.set_level(logging.DEBUG)
    code, out, err = _run(capsys, "accounts", "create", "acme", "--rpm", "10", "--tpm", "none")
    assert code == 0, err
    plaintext = out.strip()
    assert plaintext.startswith("ds-") and "shown only now" in err
    key_id = plaintext.split("-")[1]
    store = AccountStore(make_engine(f"sqlite:///{isolated_home / 'gateway.sqlite'}"))
    p = store.authenticate(plaintext)
    assert (p.limits.rpm, p.limits.tpm) == (10, None)

    code, out, _ = _run(capsys, "accounts", "list", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["name"] for r in rows] == ["acme"] and rows[0]["keys"][0]["key_id"] == key_id
    assert _run(capsys, "accounts", "limits", "acme", "--concurrency", "3")[0] == 0
    assert store.get_account("acme").limits.max_concurrent == 3

    assert _run(capsys, "accounts", "suspend", key_id, "--key", "--reason", "harvesting")[0] == 0
    with pytest.raises(AuthError) as info:
        store.authenticate(plaintext)
    assert info.value.code == "key_suspended"
    assert _run(capsys, "accounts", "activate", key_id, "--key", "--reason", "appeal")[0] == 0
    assert store.authenticate(plaintext).state is KeyState.ACTIVE

    code, out, err = _run(capsys, "accounts", "rotate", key_id)
    new_plain = out.strip()
    assert code == 0 and store.authenticate(new_plain).key_id != key_id
    code, out, _ = _run(capsys, "accounts", "show", "acme")
    assert code == 0 and key_id in out and "revoked" in out and "harvesting" in out
    code, out, _ = _run(capsys, "accounts", "audit", "acme")
    assert code == 0 and "appeal" in out
    assert _run(capsys, "accounts", "revoke", "acme", "--reason", "confirmed campaign")[0] == 0
    with pytest.raises(AuthError) as info:
        store.authenticate(new_plain)
    assert info.value.code == "key_revoked"

    # Secrets never reach a log line.
    for secret in (plaintext, new_plain):
        assert secret.split("-", 2)[2] not in caplog.text


def test_cli_errors_are_one_line(capsys):
    for args, fragment in ((["accounts", "show", "nobody"], "'nobody' does not exist"),
                           (["accounts", "create", "bad name"], "account name"),
                           (["accounts", "limits", "x", "--rpm", "many"], "--rpm 'many'"),
                           (["logs", "prune", "--delete-after", "1y"], "not a duration"),
                           (["logs", "prune"], "nothing to prune"),
                           (["logs", "export", "x.parquet", "--since", "yesterday"], "--since 'yesterday'")):
        code, _, err = _run(capsys, *args)
        assert code == 2 and fragment in err and "Traceback" not in err, (args, err)
        assert len([line for line in err.splitlines() if line.strip()]) == 1


def test_cli_database_url_from_env(capsys, tmp_path, monkeypatch):
    db = tmp_path / "elsewhere" / "gw.sqlite"
    monkeypatch.setenv("DISTILLSCOPE_DATABASE_URL", f"sqlite:///{db}")
    assert _run(capsys, "accounts", "create", "acme", "--no-key")[0] == 0
    assert db.exists() and AccountStore(make_engine(f"sqlite:///{db}")).get_account("acme").keys == ()


def test_cli_logs_export_prune_usage(capsys, tmp_path, isolated_home):
    engine = make_engine(f"sqlite:///{isolated_home / 'gateway.sqlite'}")
    upgrade_database(engine)
    rl = RequestLog(engine)
    now = datetime.now(timezone.utc)
    for i, age in enumerate([400, 40, 1, 0.01]):
        rl.write(RequestRecord(request_id=f"r{i}", ts=now - timedelta(days=age), endpoint="/v1/chat/completions",
                               status=200, account_id="acct_x", key_id="k", prompt=f"p{i}", completion=f"c{i}"))
    out_pq = tmp_path / "exp" / "log.parquet"
    code, out, err = _run(capsys, "logs", "export", str(out_pq), "--since", "7d")
    assert code == 0, err
    assert "exported 2" in out and pq.read_table(out_pq).column("request_id").to_pylist() == ["r2", "r3"]
    out_jl = tmp_path / "log.jsonl"
    code, out, _ = _run(capsys, "logs", "export", str(out_jl), "--format", "jsonl", "--until", "30d")
    assert code == 0 and [json.loads(x)["request_id"] for x in out_jl.read_text().splitlines()] == ["r0", "r1"]
    code, out, _ = _run(capsys, "logs", "prune", "--redact-prompts-after", "30d", "--delete-after", "365d")
    assert code == 0 and "redacted 1" in out and "deleted 1" in out
    assert [(r.request_id, r.prompt) for r in rl.query()] == [("r1", None), ("r2", "p2"), ("r3", "p3")]
    code, out, _ = _run(capsys, "logs", "usage")
    assert code == 0 and "acct_x" in out and "3" in out


def test_docs_python_example_runs(tmp_path, monkeypatch):
    import re
    from pathlib import Path

    page = Path(__file__).resolve().parents[1] / "docs" / "gateway-admin.md"
    code = re.search(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(page), "exec"), {"__name__": "docs_example"})  # noqa: S102 - our own docs
    store = AccountStore(make_engine(f"sqlite:///{tmp_path / 'gateway.sqlite'}"))
    assert store.get_account("acme").keys[0].state is KeyState.SUSPENDED
    assert (tmp_path / "log.parquet").exists()


def test_cli_logs_export_one_account_is_an_audit_corpus(capsys, tmp_path, isolated_home):
    """What we served to one account, exported from our log, is read by the audit as our corpus."""
    from distillscope.audit.corpus import load_corpus

    engine = make_engine(f"sqlite:///{isolated_home / 'gateway.sqlite'}")
    upgrade_database(engine)
    store = AccountStore(engine)
    rival = store.create_account("rival").account_id
    rl = RequestLog(engine)
    now = datetime.now(timezone.utc)
    chat = json.dumps([{"role": "system", "content": "be brief"}, {"role": "user", "content": "Explain tides."}])
    rows = [("a0", rival, 200, chat, "Tides come from the moon."), ("a1", rival, 429, chat, None),
            ("a2", rival, 200, "Complete: the sky is", " blue."), ("b0", "acct_other", 200, chat, "Other answer.")]
    for i, (rid, acct, status, prompt, completion) in enumerate(rows):
        rl.write(RequestRecord(request_id=rid, ts=now - timedelta(minutes=10 - i), endpoint="/v1/chat/completions",
                               status=status, account_id=acct, key_id="k", prompt=prompt, completion=completion,
                               watermark_key_id="0123456789ab" if completion else None))
    for name in ("corpus.jsonl", "corpus.parquet"):
        code, out, err = _run(capsys, "logs", "export", str(tmp_path / name), "--account", "rival")
        assert code == 0 and "exported 3" in out, err
        corpus = load_corpus(tmp_path / name)
        assert [(r.prompt, r.completion) for r in corpus.records] == [
            ("Explain tides.", "Tides come from the moon."), ("Complete: the sky is", " blue.")]
        assert corpus.key_ids == frozenset({"0123456789ab"})
    code, _, err = _run(capsys, "logs", "export", str(tmp_path / "x.jsonl"), "--account", "nobody")
    assert code == 2 and "nobody" in err and "Traceback" not in err
