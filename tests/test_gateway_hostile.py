"""Hostile and odd input: lone surrogates, undecodable bodies, limit ranges and types, tool and
developer roles, the names in ``param``, and admin-token guessing."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from distillscope.errors import ConfigError
from distillscope.gateway import GatewayConfig, Limits, StubBackend, create_app
from distillscope.gateway.accounts import MAX_LIMIT
from distillscope.gateway.admin import ADMIN_MAX_FAILURES
from distillscope.settings import load_settings

CHAT = "/v1/chat/completions"
ADMIN = "admin-token-0123456789abcdef"


@pytest.fixture
def gw(tmp_path):
    app = create_app(load_settings(home=tmp_path / "home", admin_token=ADMIN), backend=StubBackend(),
                     config=GatewayConfig(max_tokens_cap=64, default_max_tokens=16))
    with TestClient(app, raise_server_exceptions=False) as client:
        state = app.state.gateway
        state.store.create_account("alice", limits=Limits(rpm=None, tpm=None, max_concurrent=None))
        key, _ = state.store.create_key("alice")
        yield client, state, {"Authorization": f"Bearer {key}", "content-type": "application/json"}


def _error(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["code"] == code, err
    return err


@pytest.mark.parametrize("body", [
    b'{"model":"stub-echo","messages":[{"role":"user","content":"\\ud800 hi"}]}',
    b'{"model":"stub-echo","messages":[{"role":"user","content":[{"type":"text","text":"a\\udfff"}]}]}',
    b'{"model":"stub-\\udc00","messages":[{"role":"user","content":"hi"}]}',
])
def test_lone_surrogate_is_a_logged_400_and_keeps_the_connection(gw, body):
    client, state, headers = gw
    err = _error(client.post(CHAT, content=body, headers=headers), 400, "invalid_request")
    assert err["type"] == "invalid_request_error" and "surrogate" in err["message"]
    assert err["param"] in ("messages.0.content", "messages.0.content.0.text", "model")
    (row,) = state.request_log.query()
    assert row.status == 400 and row.error == "invalid_request" and row.account_id is not None
    assert "\ufffd" in (row.prompt or "") + (row.model or "")
    # the same connection still serves the next request
    ok = client.post(CHAT, json={"model": "stub-echo", "messages": [{"role": "user", "content": "fine"}]},
                     headers=headers)
    assert ok.status_code == 200
    # a valid surrogate pair (an emoji) is text, not an error
    pair = b'{"model":"stub-echo","messages":[{"role":"user","content":"\\ud83d\\ude00"}]}'
    assert client.post(CHAT, content=pair, headers=headers).json()["choices"][0]["message"]["content"] == "echo: 😀"


def test_surrogate_in_an_invalid_body_and_in_the_admin_api(gw):
    client, state, headers = gw
    bad = b'{"model":"stub-echo","messages":"\\ud800"}'
    _error(client.post(CHAT, content=bad, headers=headers), 400, "invalid_request")
    assert state.request_log.query()[0].status == 400
    acct = state.store.list_accounts()[0].account_id
    resp = client.post(f"/admin/v1/accounts/{acct}/state", headers={"Authorization": f"Bearer {ADMIN}",
                                                                     "content-type": "application/json"},
                       content=b'{"state":"suspended","reason":"x\\ud800"}')
    assert _error(resp, 400, "invalid_request")["param"] == "reason"


def test_undecodable_body_is_an_invalid_request_error(gw):
    client, state, headers = gw
    err = _error(client.post(CHAT, content=b'{"model": "\xff\xfe"}', headers=headers), 400, "invalid_request")
    assert err["type"] == "invalid_request_error"
    assert state.request_log.query()[0].error == "invalid_request"


@pytest.mark.parametrize("body, param", [
    ({"model": "stub-echo", "messages": [{"role": "user", "content": [{"type": "text"}]}]},
     "messages.0.content"),
    ({"model": "stub-echo", "messages": [{"role": "user", "content": "x"}], "stop": 5}, "stop"),
    ({"model": "stub-echo", "messages": [{"role": "user", "content": "x"}], "logit_bias": {"abc": 1}},
     "logit_bias"),
])
def test_param_names_the_request_field_not_pydantic_internals(gw, body, param):
    client, _, headers = gw
    err = _error(client.post(CHAT, json=body, headers=headers), 400, "invalid_request")
    assert err["param"].startswith(param), err
    assert not any(c in err["param"] for c in "[]()-") and ".str" not in err["param"], err


def test_developer_role_is_a_system_message_and_tool_role_is_refused_clearly(gw):
    client, state, headers = gw
    ok = client.post(CHAT, headers=headers, json={"model": "stub-echo", "messages": [
        {"role": "developer", "content": "be terse"}, {"role": "user", "content": "hi"}]})
    assert ok.status_code == 200, ok.text
    err = _error(client.post(CHAT, headers=headers, json={"model": "stub-echo", "messages": [
        {"role": "user", "content": "hi"}, {"role": "tool", "content": "42", "tool_call_id": "c1"}]}),
        400, "invalid_request")
    assert err["param"] == "messages.1.role" and "tool" in err["message"]


def test_developer_role_reaches_the_teacher_as_system():
    from distillscope.gateway.backends import chat_prompt
    from distillscope.gateway.schemas import ChatCompletionRequest

    req = ChatCompletionRequest(model="m", messages=[{"role": "developer", "content": "d"},
                                                     {"role": "user", "content": "u"}])
    assert chat_prompt(req) == ({"role": "system", "content": "d"}, {"role": "user", "content": "u"})


@pytest.mark.parametrize("limits", [{"rpm": 1e20}, {"rpm": 10**20}, {"rpm": True}, {"tpm": 1.5},
                                    {"max_concurrent": MAX_LIMIT + 1}, {"throttle_factor": True},
                                    {"rpm": "60"}])
def test_admin_limits_out_of_range_or_wrong_type_are_400(gw, limits):
    client, state, _ = gw
    admin = {"Authorization": f"Bearer {ADMIN}"}
    err = _error(client.put("/admin/v1/accounts/alice/limits", json=limits, headers=admin), 400, "invalid_request")
    assert err["param"] == next(iter(limits))
    resp = client.post("/admin/v1/accounts", json={"name": "bob", "limits": limits}, headers=admin)
    assert resp.status_code == 400
    assert state.store.get_account("alice").limits == Limits(rpm=None, tpm=None, max_concurrent=None)
    assert client.put("/admin/v1/accounts/alice/limits", json={"rpm": MAX_LIMIT}, headers=admin).status_code == 200


@pytest.mark.parametrize("kwargs", [{"rpm": 2**63}, {"tpm": True}, {"max_concurrent": 0},
                                    {"throttle_factor": float("nan")}, {"throttle_factor": True}])
def test_limits_reject_out_of_range_and_non_integers(kwargs):
    with pytest.raises(ConfigError, match="invalid"):
        Limits(**kwargs)


def test_cli_limit_too_large_is_one_line(tmp_path, monkeypatch, capsys):
    from distillscope.cli import main

    monkeypatch.setenv("DISTILLSCOPE_HOME", str(tmp_path))
    assert main(["accounts", "create", "carol", "--rpm", str(10**20), "--no-key"]) == 2
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text and "rpm=" in text and "2147483647" in text
    assert len([line for line in text.splitlines() if line.strip()]) <= 3, text


def test_admin_token_guessing_is_logged_and_throttled(gw, caplog):
    client, _, _ = gw
    with caplog.at_level(logging.WARNING, logger="distillscope.gateway.admin"):
        codes = [client.get("/admin/v1/accounts", headers={"Authorization": f"Bearer guess-{i}"}).status_code
                 for i in range(ADMIN_MAX_FAILURES + 2)]
    assert codes[:ADMIN_MAX_FAILURES] == [401] * ADMIN_MAX_FAILURES
    assert codes[ADMIN_MAX_FAILURES:] == [403, 403]
    assert "invalid_admin_token from testclient" in caplog.text
    blocked = client.get("/admin/v1/accounts", headers={"Authorization": f"Bearer {ADMIN}"})
    err = _error(blocked, 403, "admin_auth_blocked")  # even the right token, until the window passes
    assert int(blocked.headers["retry-after"]) >= 1 and "too many" in err["message"]
    assert ADMIN not in caplog.text


def test_admin_guard_forgets_failures_after_the_window():
    from pydantic import SecretStr
    from starlette.requests import Request

    from distillscope.gateway.admin import AdminBlocked, AdminGuard
    from distillscope.errors import AuthError

    now = [0.0]
    guard = AdminGuard(SecretStr("right-token"), max_failures=2, window_s=10, clock=lambda: now[0])

    def call(token: str) -> None:
        scope = {"type": "http", "headers": [(b"authorization", f"Bearer {token}".encode())],
                 "client": ("10.0.0.9", 1)}
        guard(Request(scope), None)

    for _ in range(2):
        with pytest.raises(AuthError):
            call("wrong")
    with pytest.raises(AdminBlocked):
        call("right-token")
    now[0] = 10.5
    call("right-token")  # the window has passed


def test_serve_without_a_watermark_key_is_one_line(tmp_path, monkeypatch, capsys):
    from distillscope.cli import main

    monkeypatch.setenv("DISTILLSCOPE_HOME", str(tmp_path))
    assert main(["serve", "--teacher", "tiny", "--port", "1"]) == 2
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text and "key" in text
    assert len([line for line in text.splitlines() if line.strip()]) == 1, text
