"""Proxy mode against a local stub upstream: pass-through, streaming, upstream key, loud no-watermark."""

from __future__ import annotations

import logging

import openai
import pytest
from openai import OpenAI

from distillscope.gateway import Limits, ProxyBackend, ServerThread, create_app, stub_upstream_app
from distillscope.gateway.server import free_port
from distillscope.settings import load_settings

MSG = [{"role": "user", "content": "through the proxy"}]


@pytest.fixture
def upstream():
    app = stub_upstream_app()
    with ServerThread(app) as server:
        yield server, app


@pytest.fixture
def proxied(tmp_path, upstream, caplog):
    up_server, up_app = upstream
    settings = load_settings(home=tmp_path, upstream_url=up_server.url, upstream_api_key="upstream-secret-key-42")
    with caplog.at_level(logging.WARNING):
        app = create_app(settings)  # the backend comes from the settings: proxy mode
        server = ServerThread(app).start()
    try:
        state = app.state.gateway
        state.store.create_account("alice", limits=Limits(rpm=None, tpm=None, max_concurrent=None))
        key, _ = state.store.create_key("alice")
        yield OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0), state, up_app, key
    finally:
        server.stop()


def test_proxy_round_trip_plain_and_streaming(proxied, caplog):
    client, state, up_app, key = proxied
    assert isinstance(state.backend, ProxyBackend)
    setup_log = "\n".join(r.getMessage() for r in caplog.get_records("setup"))
    assert "NOT watermarked" in setup_log  # loud at start-up
    resp = client.chat.completions.create(model="stub-echo", messages=MSG, temperature=0.2, logprobs=True,
                                          top_logprobs=2, extra_body={"return_tokens_as_token_ids": True})
    assert resp.choices[0].message.content == "echo: through the proxy"
    assert resp.choices[0].logprobs.content[0].token.startswith("token_id:")
    stream = client.chat.completions.create(model="stub-echo", messages=MSG, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "echo: through the proxy"
    text = client.completions.create(model="stub-echo", prompt="a b", max_tokens=5).choices[0].text
    assert text == "echo: a b"
    sent = up_app.state.received
    assert [r["endpoint"] for r in sent] == ["chat", "chat", "completions"]
    assert all(r["authorization"] == "Bearer upstream-secret-key-42" for r in sent)  # never the client's key
    assert sent[0]["body"]["temperature"] == 0.2 and sent[0]["body"]["return_tokens_as_token_ids"] is True
    assert sent[0]["body"]["max_tokens"] == state.config.default_max_tokens  # the cap holds upstream too
    assert sent[1]["body"]["stream_options"] == {"include_usage": True}
    rows = state.request_log.query()
    assert [r.status for r in rows] == [200, 200, 200]
    assert rows[1].stream and rows[1].completion == "echo: through the proxy" and rows[1].completion_tokens == 4
    assert all(r.watermark_key_id is None for r in rows)
    everything = setup_log + caplog.text + repr(rows) + repr(client.models.list())
    assert "upstream-secret-key-42" not in everything and key.split("-", 2)[2] not in everything


def test_proxy_says_unwatermarked_in_models_and_health(proxied):
    client, state, _, _ = proxied
    models = client.models.list()
    assert [m.id for m in models.data] == ["stub-echo"]
    meta = models.data[0].model_extra["distillscope"]
    assert meta["backend"] == "proxy" and meta["watermarked"] is False and "NOT watermarked" in meta["warning"]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="other", messages=MSG)
    assert state.request_log.query()[-1].error == "model_not_found"


def test_upstream_errors_pass_through_and_outage_is_502(tmp_path, proxied):
    client, state, up_app, key = proxied
    with pytest.raises(openai.BadRequestError) as err:  # refused by the upstream: its 4xx body passes through
        client.chat.completions.create(model="stub-echo", messages=MSG, max_tokens=600)
    assert err.value.code == "max_tokens_too_large" and "at most 512" in err.value.message
    with pytest.raises(openai.BadRequestError):
        list(client.chat.completions.create(model="stub-echo", messages=MSG, max_tokens=600, stream=True))
    assert [(r.status, r.error) for r in state.request_log.query()] == [(400, "max_tokens_too_large")] * 2
    dead = load_settings(home=tmp_path / "dead", upstream_url=f"http://127.0.0.1:{free_port()}")
    app = create_app(dead)
    with ServerThread(app) as server:
        app.state.gateway.store.create_account("bob")
        bob, _ = app.state.gateway.store.create_key("bob")
        c = OpenAI(base_url=server.url + "/v1", api_key=bob, max_retries=0)
        with pytest.raises(openai.APIStatusError) as err:
            c.chat.completions.create(model="anything", messages=MSG)
        assert err.value.status_code == 502 and err.value.code == "upstream_unavailable"
        with pytest.raises(openai.APIStatusError) as err:
            list(c.chat.completions.create(model="anything", messages=MSG, stream=True))
        assert err.value.status_code == 502
        assert [r.status for r in app.state.gateway.request_log.query()] == [502, 502]
