"""The gateway in-process (stub backend): errors, auth, limits, revocation, log rows, guards, metrics."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from distillscope.gateway import (EnforcementAction, GatewayConfig, KeyState, Limits, StubBackend, create_app)
from distillscope.settings import load_settings

CHAT = "/v1/chat/completions"
MSG = [{"role": "user", "content": "hello gateway"}]


@pytest.fixture
def gateway(tmp_path):
    """(client, state, api_key) for a stub-backed gateway with one account 'alice'."""
    settings = load_settings(home=tmp_path / "home")
    app = create_app(settings, backend=StubBackend(),
                     config=GatewayConfig(max_tokens_cap=64, default_max_tokens=16, max_prompt_chars=2000,
                                          max_choices=4))
    with TestClient(app) as client:
        state = app.state.gateway
        state.store.create_account("alice", limits=Limits(rpm=1000, tpm=None, max_concurrent=None))
        key, _ = state.store.create_key("alice")
        yield client, state, key


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_openai_error(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == code
    assert "Traceback" not in resp.text
    return body["error"]


def test_chat_round_trip_is_openai_shaped_and_logged(gateway):
    client, state, key = gateway
    resp = client.post(CHAT, json={"model": "stub-echo", "messages": MSG, "temperature": 0.3,
                                   "logprobs": True, "top_logprobs": 3, "user": "u1"}, headers=auth(key))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "echo: hello gateway"}
    entry = body["choices"][0]["logprobs"]["content"][0]
    assert len(entry["top_logprobs"]) == 3 and entry["bytes"] == list(entry["token"].encode())
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    assert resp.headers["x-request-id"] == body["id"].removeprefix("chatcmpl-")
    (row,) = state.request_log.query()
    assert row.request_id == resp.headers["x-request-id"] and row.status == 200
    assert row.account_id is not None and row.completion == "echo: hello gateway"
    assert row.temperature == 0.3 and row.logprobs == 3 and row.params["user"] == "u1"
    assert row.prompt_tokens == body["usage"]["prompt_tokens"]


def test_return_tokens_as_token_ids(gateway):
    client, _, key = gateway
    resp = client.post("/v1/completions", json={"model": "stub-echo", "prompt": "a b", "logprobs": 2,
                                                "return_tokens_as_token_ids": True}, headers=auth(key))
    lp = resp.json()["choices"][0]["logprobs"]
    assert all(t.startswith("token_id:") for t in lp["tokens"])
    assert all(k.startswith("token_id:") for top in lp["top_logprobs"] for k in top)


@pytest.mark.parametrize("body, status, code, param", [
    ("{not json", 400, "invalid_request", None),
    ('{"messages": [{"role": "user", "content": "x"}]}', 400, "invalid_request", "model"),
    ('{"model": "stub-echo"}', 400, "invalid_request", "messages"),
    ('{"model": "stub-echo", "messages": "hi"}', 400, "invalid_request", "messages"),
    ('{"model": "stub-echo", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}',
     400, "invalid_request", "temperature"),
    ('{"model": "stub-echo", "messages": [{"role": "user", "content": "x"}], "top_logprobs": 21, "logprobs": true}',
     400, "invalid_request", "top_logprobs"),
    ('[1, 2]', 400, "invalid_request", None),
    ('{"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}', 404, "model_not_found", None),
    ('{"model": "stub-echo", "messages": [{"role": "user", "content": "x"}], "max_tokens": 65}',
     400, "max_tokens_too_large", None),
    ('{"model": "stub-echo", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1e400}',
     400, "invalid_request", "max_tokens"),
    ('{"model": "stub-echo", "messages": [{"role": "user", "content": "x"}], "max_tokens": 99999999999999999999999}',
     400, "max_tokens_too_large", None),
    ('{"model": "stub-echo", "messages": [{"role": "user", "content": "x"}], "temperature": 1e308, "n": -1}',
     400, "invalid_request", None),
    ('{"model": "stub-echo", "messages": [{"role": "user", "content": "x"}], "n": 5}', 400, "too_many_choices", None),
    ('{"model": "stub-echo", "messages": [{"role": "user", "content": "x"}], "logit_bias": {"12": 5}}',
     400, "unsupported_parameter", None),
])
def test_bad_input_is_a_4xx_with_an_openai_body_and_a_log_row(gateway, body, status, code, param):
    client, state, key = gateway
    resp = client.post(CHAT, content=body, headers={**auth(key), "content-type": "application/json"})
    err = assert_openai_error(resp, status, code)
    if param is not None:
        assert err["param"] is not None and err["param"].startswith(param)
    (row,) = state.request_log.query()
    assert row.status == status and row.error == code and row.account_id is not None


def test_oversize_prompt_is_400(gateway):
    client, _, key = gateway
    resp = client.post(CHAT, json={"model": "stub-echo", "messages": [{"role": "user", "content": "x" * 2001}]},
                       headers=auth(key))
    assert_openai_error(resp, 400, "prompt_too_long")  # like OpenAI's context_length_exceeded


@pytest.mark.parametrize("header, code", [
    (None, "missing_api_key"), ("Bearer ", "missing_api_key"), ("Basic abc", "missing_api_key"),
    ("Bearer sk-not-ours", "invalid_api_key"), ("Bearer ds-0123456789ab-wrongwrongwrongwrong", "invalid_api_key"),
])
def test_auth_failures_are_401_and_logged_with_client_ip(gateway, header, code):
    client, state, _ = gateway
    headers = {"Authorization": header} if header else {}
    resp = client.post(CHAT, json={"model": "stub-echo", "messages": MSG}, headers=headers)
    assert_openai_error(resp, 401, code)
    (row,) = state.request_log.query()
    assert row.status == 401 and row.error == code and row.account_id is None
    assert row.client_ip == "testclient" and row.model == "stub-echo"


def test_auth_is_checked_before_the_body(gateway):
    client, _, _ = gateway
    resp = client.post(CHAT, content="{broken", headers={"content-type": "application/json"})
    assert_openai_error(resp, 401, "missing_api_key")


def test_revocation_takes_effect_on_the_very_next_request(gateway):
    client, state, key = gateway
    assert client.post(CHAT, json={"model": "stub-echo", "messages": MSG}, headers=auth(key)).status_code == 200
    state.store.set_account_state("alice", "revoked", reason="distillation campaign", actor="test")
    err = assert_openai_error(client.post(CHAT, json={"model": "stub-echo", "messages": MSG}, headers=auth(key)),
                              403, "key_revoked")
    assert key not in err["message"]
    rows = state.request_log.query()
    assert [r.status for r in rows] == [200, 403]
    assert rows[1].key_id == rows[0].key_id and rows[1].error == "key_revoked"
    assert rows[1].account_id == rows[0].account_id  # a genuine key refused for its state stays attributed


def test_suspended_key_is_403(gateway):
    client, state, key = gateway
    key_id = state.store.list_accounts()[0].keys[0].key_id
    state.store.set_key_state(key_id, "suspended", reason="review", actor="test")
    assert_openai_error(client.post(CHAT, json={"model": "stub-echo", "messages": MSG}, headers=auth(key)),
                        403, "key_suspended")


def test_rate_limit_is_429_with_openai_headers(gateway):
    client, state, _ = gateway
    state.store.create_account("bob", limits=Limits(rpm=2, tpm=10_000, max_concurrent=None))
    key, _ = state.store.create_key("bob")
    ok = [client.post(CHAT, json={"model": "stub-echo", "messages": MSG}, headers=auth(key)) for _ in range(2)]
    assert [r.status_code for r in ok] == [200, 200]
    assert ok[0].headers["x-ratelimit-limit-requests"] == "2"
    assert ok[1].headers["x-ratelimit-remaining-requests"] == "0"
    assert "x-ratelimit-remaining-tokens" in ok[1].headers
    resp = client.post(CHAT, json={"model": "stub-echo", "messages": MSG}, headers=auth(key))
    assert_openai_error(resp, 429, "rate_limit_exceeded")
    assert int(resp.headers["retry-after"]) >= 1
    assert resp.headers["x-ratelimit-limit-requests"] == "2"
    bob = state.store.get_account("bob").account_id
    assert [r.status for r in state.request_log.query(account_id=bob)] == [200, 200, 429]


def test_streaming_row_is_written_before_done(gateway):
    client, state, key = gateway
    with client.stream("POST", CHAT, json={"model": "stub-echo", "messages": MSG, "stream": True,
                                           "stream_options": {"include_usage": True}}, headers=auth(key)) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = []
        for line in resp.iter_lines():
            if line.startswith("data: "):
                if line == "data: [DONE]":
                    assert state.request_log.count() == 1  # durable before [DONE] reached us
                events.append(line)
    assert events[-1] == "data: [DONE]"
    assert "distillscope_requests_in_flight 0.0" in client.get("/metrics").text
    (row,) = state.request_log.query()
    assert row.stream and row.completion == "echo: hello gateway" and row.completion_tokens == 3


class _RevokeAfterTwo:
    def __init__(self) -> None:
        self.seen = []

    def observe(self, record):
        self.seen.append(record.request_id)
        if len(self.seen) == 2 and record.account_id:
            return [EnforcementAction("account", record.account_id, KeyState.REVOKED, "two requests", "test-guard")]
        return []


class _Broken:
    def observe(self, record):
        raise RuntimeError("guard bug")


def test_guards_see_every_row_and_their_actions_apply(tmp_path, caplog):
    guard = _RevokeAfterTwo()
    app = create_app(load_settings(home=tmp_path), backend=StubBackend(), guards=[_Broken(), guard])
    with TestClient(app) as client:
        state = app.state.gateway
        state.store.create_account("carol")
        key, _ = state.store.create_key("carol")
        with caplog.at_level(logging.ERROR):
            codes = [client.post(CHAT, json={"model": "stub-echo", "messages": MSG}, headers=auth(key)).status_code
                     for _ in range(3)]
        assert codes == [200, 200, 403]
        assert guard.seen == [r.request_id for r in state.request_log.query()]
        assert "guard bug" in caplog.text
        assert "distillscope_guard_failures_total 3.0" in client.get("/metrics").text


def test_metrics_healthz_and_models(gateway):
    client, _, key = gateway
    client.post(CHAT, json={"model": "stub-echo", "messages": MSG}, headers=auth(key))
    client.post(CHAT, json={"model": "nope", "messages": MSG}, headers=auth(key))
    text = client.get("/metrics").text
    assert 'distillscope_requests_total{endpoint="/v1/chat/completions",status="200"} 1.0' in text
    assert 'distillscope_rejections_total{reason="model_not_found"} 1.0' in text
    assert 'distillscope_tokens_total{kind="completion"} 3.0' in text
    assert "distillscope_request_latency_seconds_bucket" in text
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["backend"] == "stub"
    assert client.get("/readyz").json()["checks"]["database"] == "ok"
    models = client.get("/v1/models", headers=auth(key)).json()
    assert [m["id"] for m in models["data"]] == ["stub-echo"]
    assert models["data"][0]["distillscope"]["backend"] == "stub"
    assert client.get("/v1/models/stub-echo", headers=auth(key)).json()["id"] == "stub-echo"
    assert_openai_error(client.get("/v1/models/zzz", headers=auth(key)), 404, "model_not_found")
    assert_openai_error(client.get("/v1/nothing-here", headers=auth(key)), 404, "not_found")


def test_no_secret_in_responses_or_logs(tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("DISTILLSCOPE_ADMIN_TOKEN", "admin-secret-123456")
    settings = load_settings(home=tmp_path)
    app = create_app(settings, backend=StubBackend())
    with caplog.at_level(logging.DEBUG), TestClient(app) as client:
        state = app.state.gateway
        state.store.create_account("dave")
        key, _ = state.store.create_key("dave")
        texts = [client.post(CHAT, json={"model": "stub-echo", "messages": MSG}, headers=auth(key)).text,
                 client.post(CHAT, content="{x", headers={**auth(key), "content-type": "application/json"}).text,
                 client.post(CHAT, json={"model": "stub-echo", "messages": MSG},
                             headers=auth(key[:-3] + "zzz")).text]
        state.store.set_account_state("dave", "revoked", reason="test", actor="test")
        texts.append(client.post(CHAT, json={"model": "stub-echo", "messages": MSG}, headers=auth(key)).text)
        rows = [repr(r) for r in state.request_log.query()]
    secret = key.split("-", 2)[2]
    for blob in texts + rows + [caplog.text]:
        assert secret not in blob and "admin-secret-123456" not in blob


def test_internal_fault_is_a_500_without_trace(tmp_path):
    class Exploding(StubBackend):
        async def generate(self, request):
            raise ZeroDivisionError("boom in backend")

    app = create_app(load_settings(home=tmp_path), backend=Exploding())
    with TestClient(app, raise_server_exceptions=False) as client:
        state = app.state.gateway
        state.store.create_account("erin")
        key, _ = state.store.create_key("erin")
        resp = client.post(CHAT, json={"model": "stub-echo", "messages": MSG}, headers=auth(key))
        err = assert_openai_error(resp, 500, "internal_error")
        assert "boom" not in err["message"] and "ZeroDivision" not in resp.text
        (row,) = state.request_log.query()
        assert row.status == 500 and row.error == "internal_error"


def test_oversize_body_is_413_before_parsing(tmp_path):
    app = create_app(load_settings(home=tmp_path), backend=StubBackend(), config=GatewayConfig(max_body_bytes=5000))
    with TestClient(app) as client:
        state = app.state.gateway
        state.store.create_account("fred")
        key, _ = state.store.create_key("fred")
        resp = client.post(CHAT, json={"model": "stub-echo", "messages": [{"role": "user", "content": "y" * 6000}]},
                           headers=auth(key))
        assert_openai_error(resp, 413, "request_too_large")
        (row,) = state.request_log.query()
        assert row.status == 413 and row.account_id is not None
