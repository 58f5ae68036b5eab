"""Liveness (/healthz) and readiness (/readyz): readiness fails while the gateway cannot serve."""

from __future__ import annotations

import time

import httpx
from fastapi.testclient import TestClient

from distillscope.gateway import Limits, ProxyBackend, ServerThread, StubBackend, create_app, stub_upstream_app
from distillscope.gateway.server import free_port
from distillscope.settings import load_settings

MSG = [{"role": "user", "content": "hi"}]


def _key(state) -> dict[str, str]:
    state.store.create_account("alice", limits=Limits(rpm=100, tpm=None, max_concurrent=None))
    return {"Authorization": f"Bearer {state.store.create_key('alice')[0]}"}


def test_ready_when_everything_answers(tmp_path):
    app = create_app(load_settings(home=tmp_path), backend=StubBackend())
    with TestClient(app) as client:
        live, ready = client.get("/healthz"), client.get("/readyz")
    assert live.status_code == 200 and live.json()["status"] == "ok" and live.json()["backend"] == "stub"
    assert ready.status_code == 200 and ready.json()["status"] == "ready" and ready.json()["failing"] == []
    assert ready.json()["checks"] == {"backend": "ok", "database": "ok", "rate_limiter": "ok"}


def test_redis_down_is_alive_but_not_ready(tmp_path):
    app = create_app(load_settings(home=tmp_path, redis_url="redis://127.0.0.1:1/0"), backend=StubBackend())
    with TestClient(app) as client:
        headers = _key(app.state.gateway)
        served = client.post("/v1/chat/completions", json={"model": "stub-echo", "messages": MSG}, headers=headers)
        assert served.status_code == 503  # every request fails ...
        assert client.get("/healthz").status_code == 200  # ... the process is alive ...
        ready = client.get("/readyz")  # ... and readiness says why it cannot serve
    assert ready.status_code == 503 and ready.json()["failing"] == ["rate_limiter"]


def test_upstream_down_at_start_is_not_ready_until_it_answers_and_its_models_are_refreshed(tmp_path):
    port = free_port()
    backend = ProxyBackend(f"http://127.0.0.1:{port}", retry_s=0.2, timeout_s=5)
    app = create_app(load_settings(home=tmp_path), backend=backend)
    with ServerThread(app) as gateway:
        assert httpx.get(gateway.url + "/healthz").status_code == 200
        ready = httpx.get(gateway.url + "/readyz")
        assert ready.status_code == 503 and ready.json()["failing"] == ["backend"]
        assert backend.info.model_ids == ()
        with ServerThread(stub_upstream_app(), port=port):
            deadline = time.monotonic() + 10
            while backend.info.model_ids == () and time.monotonic() < deadline:
                time.sleep(0.05)  # the background refresh finds the upstream on its own
            assert backend.info.model_ids == ("stub-echo",)
            ready = httpx.get(gateway.url + "/readyz")
            assert ready.status_code == 200 and ready.json()["models"] == ["stub-echo"]
            headers = _key(app.state.gateway)
            bad = httpx.post(gateway.url + "/v1/chat/completions", headers=headers,
                             json={"model": "not-upstream", "messages": MSG})
            assert bad.status_code == 404  # the refreshed list is enforced
        down = httpx.get(gateway.url + "/readyz")
        assert down.status_code == 503 and down.json()["failing"] == ["backend"]
