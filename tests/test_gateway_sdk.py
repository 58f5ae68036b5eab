"""The real `openai` SDK against a real uvicorn server on loopback: stub and tiny-teacher backends."""

from __future__ import annotations

import asyncio
import threading

import openai
import pytest
from openai import OpenAI

from distillscope.gateway import (BatchingConfig, GatewayConfig, Limits, LocalBackend, ServerThread, StubBackend,
                                  create_app, make_engine)
from distillscope.settings import load_settings

MSG = [{"role": "user", "content": "say something"}]


@pytest.fixture
def stub_server(tmp_path):
    app = create_app(load_settings(home=tmp_path), backend=StubBackend())
    with ServerThread(app) as server:
        state = app.state.gateway
        state.store.create_account("alice", limits=Limits(rpm=None, tpm=None, max_concurrent=None))
        key, _ = state.store.create_key("alice")
        yield server, state, key


def client(server, key, **kw) -> OpenAI:
    return OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=60, **kw)


def test_sdk_chat_plain_and_streaming(stub_server):
    server, state, key = stub_server
    c = client(server, key)
    resp = c.chat.completions.create(model="stub-echo", messages=MSG, temperature=0.5, top_p=0.9, max_tokens=8,
                                     n=2, stop=["zzz"], seed=7, user="sdk-test", logprobs=True, top_logprobs=2)
    assert [ch.message.content for ch in resp.choices] == ["echo: say something"] * 2
    assert resp.usage.completion_tokens == 6 and resp.usage.total_tokens > 6
    assert len(resp.choices[0].logprobs.content[0].top_logprobs) == 2
    chunks = list(c.chat.completions.create(model="stub-echo", messages=MSG, stream=True,
                                            stream_options={"include_usage": True}))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "echo: say something"
    assert chunks[-1].usage.completion_tokens == 3
    rows = state.request_log.query()
    assert [(r.stream, r.status) for r in rows] == [(False, 200), (True, 200)]
    assert rows[0].params["seed"] == 7 and rows[0].params["n"] == 2 and rows[0].user_agent.startswith("OpenAI")


def test_sdk_completions_models_and_headers(stub_server):
    server, _, key = stub_server
    c = client(server, key)
    resp = c.completions.create(model="stub-echo", prompt="one two", max_tokens=2, logprobs=3)
    assert resp.choices[0].text == "echo: one" and resp.choices[0].finish_reason == "length"
    assert resp.choices[0].logprobs.tokens == ["echo:", " one"]
    streamed = "".join(ch.choices[0].text for ch in c.completions.create(model="stub-echo", prompt="x y",
                                                                          stream=True) if ch.choices)
    assert streamed == "echo: x y"
    assert [m.id for m in c.models.list()] == ["stub-echo"]
    raw = c.chat.completions.with_raw_response.create(model="stub-echo", messages=MSG)
    assert raw.headers["x-request-id"] and raw.parse().choices[0].message.content


def test_sdk_sees_typed_errors(stub_server):
    server, state, key = stub_server
    with pytest.raises(openai.AuthenticationError) as err:
        client(server, "ds-000000000000-notarealsecretnotarealsecret").chat.completions.create(
            model="stub-echo", messages=MSG)
    assert err.value.code == "invalid_api_key"
    with pytest.raises(openai.NotFoundError):
        client(server, key).chat.completions.create(model="gpt-7", messages=MSG)
    with pytest.raises(openai.BadRequestError) as err:
        client(server, key).chat.completions.create(model="stub-echo", messages=MSG, max_tokens=100_000)
    assert err.value.code == "max_tokens_too_large"
    state.store.create_account("bob", limits=Limits(rpm=1, tpm=None, max_concurrent=None))
    bob, _ = state.store.create_key("bob")
    client(server, bob).chat.completions.create(model="stub-echo", messages=MSG)
    with pytest.raises(openai.RateLimitError) as err:
        client(server, bob).chat.completions.create(model="stub-echo", messages=MSG)
    assert int(err.value.response.headers["retry-after"]) >= 1
    state.store.set_account_state("bob", "revoked", reason="campaign", actor="test")
    with pytest.raises(openai.PermissionDeniedError):
        client(server, bob).chat.completions.create(model="stub-echo", messages=MSG)
    rows = state.request_log.query()
    assert [r.status for r in rows] == [401, 404, 400, 200, 429, 403]
    assert rows[0].client_ip == "127.0.0.1" and rows[0].account_id is None


def test_n_concurrent_requests_give_exactly_n_rows(stub_server):
    server, state, key = stub_server
    n = 24
    c = client(server, key)
    errors = []

    def one(i: int) -> None:
        try:
            resp = c.chat.completions.create(model="stub-echo", messages=[{"role": "user", "content": f"req {i}"}],
                                             stream=i % 3 == 0)
            if i % 3 == 0:
                assert "".join(ch.choices[0].delta.content or "" for ch in resp) == f"echo: req {i}"
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    rows = state.request_log.query()
    assert len(rows) == n and len({r.request_id for r in rows}) == n
    assert sorted(r.prompt for r in rows) == sorted(f'[{{"role": "user", "content": "req {i}"}}]' for i in range(n))


@pytest.fixture
def tiny_backend(tiny_loaded):
    from distillscope.watermark import WatermarkKey, make_scheme

    scheme = make_scheme("kgw", WatermarkKey.generate(), gamma=0.25, delta=4.0)
    return LocalBackend.from_loaded(tiny_loaded, scheme, batching=BatchingConfig(max_batch=8, window_ms=30)), scheme


@pytest.mark.slow
def test_local_teacher_is_watermarked_and_batched(tmp_path, tiny_backend):
    backend, scheme = tiny_backend
    app = create_app(load_settings(home=tmp_path), backend=backend,
                     config=GatewayConfig(max_tokens_cap=64, default_max_tokens=24))
    with ServerThread(app) as server:
        state = app.state.gateway
        state.store.create_account("alice", limits=Limits(rpm=None, tpm=None, max_concurrent=None))
        key, _ = state.store.create_key("alice")
        c = client(server, key)
        model = c.models.list().data[0]
        assert model.model_extra["distillscope"]["watermarked"] is True
        resp = c.chat.completions.create(model=model.id, messages=MSG, max_tokens=32, temperature=1.0,
                                         logprobs=True, top_logprobs=2,
                                         extra_body={"return_tokens_as_token_ids": True})
        ids = [int(e.token.removeprefix("token_id:")) for e in resp.choices[0].logprobs.content]
        assert len(ids) == resp.usage.completion_tokens > 10
        assert scheme.detector().detect(ids).p_value < 1e-3
        row = state.request_log.query()[-1]
        assert row.watermark_key_id == scheme.config()["key_id"]

        ac = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=120)

        async def burst():
            return await asyncio.gather(*(ac.chat.completions.create(
                model=model.id, messages=[{"role": "user", "content": f"q{i}"}], max_tokens=3, temperature=0.7)
                for i in range(6)))

        outs = asyncio.run(burst())
        assert all(o.choices[0].message.content is not None for o in outs)
        assert max(backend.batch_counts) > 1  # concurrent requests shared generate calls
        assert "distillscope_batch_size_bucket" in __import__("httpx").get(server.url + "/metrics").text
        stream = c.chat.completions.create(model=model.id, messages=MSG, max_tokens=6, stream=True, seed=3)
        streamed = "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
        again = c.chat.completions.create(model=model.id, messages=MSG, max_tokens=6, seed=3)
        assert streamed == again.choices[0].message.content  # seeded: reproducible, stream == whole


@pytest.mark.postgres
def test_postgresql_request_log(tmp_path, postgres_url):
    engine = make_engine(postgres_url)
    app = create_app(load_settings(home=tmp_path, database_url=postgres_url), backend=StubBackend(), engine=engine)
    try:
        with ServerThread(app) as server:
            state = app.state.gateway
            state.store.create_account("pg", limits=Limits(rpm=3, tpm=None, max_concurrent=None))
            key, _ = state.store.create_key("pg")
            c = client(server, key)
            for _ in range(3):
                c.chat.completions.create(model="stub-echo", messages=MSG)
            with pytest.raises(openai.RateLimitError):
                c.chat.completions.create(model="stub-echo", messages=MSG)
            assert [r.status for r in state.request_log.query()] == [200, 200, 200, 429]
            assert engine.dialect.name == "postgresql"
    finally:
        engine.dispose()
