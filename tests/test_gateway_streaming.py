"""Token-by-token streaming from the local teacher, through a real uvicorn server on loopback."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from distillscope.gateway import BatchingConfig, GatewayConfig, Limits, LocalBackend, ServerThread, create_app
from distillscope.gateway.streaming import TextReleaser
from distillscope.settings import load_settings
from distillscope.watermark import WatermarkKey, make_scheme

pytestmark = pytest.mark.usefixtures("torch_one_thread")

MSG = [{"role": "user", "content": "Tell me a story."}]


@pytest.fixture
def served(tmp_path, tiny_loaded):
    """A local tiny-teacher gateway; ``slow(seconds)`` slows every forward pass; generations are recorded."""
    scheme = make_scheme("kgw", WatermarkKey.from_hex("5a" * 32), gamma=0.25, delta=4.0)
    backend = LocalBackend.from_loaded(tiny_loaded, scheme, batching=BatchingConfig(max_batch=8, window_ms=20),
                                       aliases=("tiny",))
    finished: list[tuple[float, list]] = []
    generate = backend.teacher.generate

    def recording_generate(*args, **kwargs):
        out = generate(*args, **kwargs)
        finished.append((time.perf_counter(), out))
        return out

    backend.teacher.generate = recording_generate
    delay = {"s": 0.0}
    hook = tiny_loaded.model.register_forward_pre_hook(lambda *a: time.sleep(delay["s"]))
    app = create_app(load_settings(home=tmp_path), backend=backend,
                     config=GatewayConfig(max_tokens_cap=128, default_max_tokens=16))
    try:
        with ServerThread(app) as server:
            state = app.state.gateway
            state.store.create_account("alice", limits=Limits(rpm=None, tpm=None, max_concurrent=None))
            key, _ = state.store.create_key("alice")
            http = httpx.Client(base_url=server.url + "/v1", headers={"Authorization": f"Bearer {key}"},
                                timeout=60)
            yield http, state, finished, lambda s: delay.update(s=s), scheme
            http.close()
    finally:
        hook.remove()


def sse_events(resp: httpx.Response, on_event=None):
    """(arrival time, parsed data) per event; ``on_event`` may stop reading by returning False."""
    out = []
    for line in resp.iter_lines():
        if not line.startswith("data: "):
            continue
        data = line[len("data: "):]
        out.append((time.perf_counter(), data if data == "[DONE]" else json.loads(data)))
        if on_event is not None and on_event(out[-1][1]) is False:
            break
    return out


def chat_text(events) -> str:
    return "".join(e["choices"][0]["delta"].get("content") or "" for _, e in events
                   if isinstance(e, dict) and e["choices"])


def test_first_token_arrives_long_before_generation_ends(served):
    http, state, finished, slow, _ = served
    slow(0.04)   # 24 tokens: about a second of generation
    body = {"model": "tiny", "messages": MSG, "max_tokens": 24, "temperature": 1.0, "seed": 1, "stream": True}
    with http.stream("POST", "/chat/completions", json=body) as resp:
        assert resp.status_code == 200
        events = sse_events(resp)
    (done_at, (gen,)), = finished
    content = [t for t, e in events if isinstance(e, dict) and e["choices"] and e["choices"][0]["delta"].get("content")]
    assert gen.n_tokens >= 10 and content
    assert content[0] < done_at - 0.25            # the first token came while the rest was being generated
    assert sum(t < done_at for t in content) >= 5  # and so did most of the others
    assert chat_text(events) == gen.text


@pytest.mark.parametrize("extra", [
    {},
    {"logprobs": True, "top_logprobs": 2},
    {"stop": ["e"], "n": 2},
])
def test_streamed_chat_equals_non_streamed_with_a_seed(served, extra):
    http, state, _, _, scheme = served
    body = {"model": "tiny", "messages": MSG, "max_tokens": 20, "temperature": 1.0, "seed": 11, **extra}
    whole = http.post("/chat/completions", json=body).json()
    with http.stream("POST", "/chat/completions",
                     json={**body, "stream": True, "stream_options": {"include_usage": True}}) as resp:
        events = sse_events(resp)
    chunks = [e for _, e in events if isinstance(e, dict)]
    assert events[-1][1] == "[DONE]"
    for choice in whole["choices"]:
        i = choice["index"]
        mine = [c["choices"][0] for c in chunks if c["choices"] and c["choices"][0]["index"] == i]
        assert "".join(c["delta"].get("content") or "" for c in mine) == choice["message"]["content"]
        assert mine[-1]["finish_reason"] == choice["finish_reason"]
        if extra.get("logprobs"):
            streamed = [e for c in mine if c["logprobs"] for e in c["logprobs"]["content"]]
            assert streamed == choice["logprobs"]["content"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == whole["usage"]
    stream_row = state.request_log.query()[-1]
    assert stream_row.stream and stream_row.status == 200 and stream_row.key_id
    texts = [c["message"]["content"] for c in whole["choices"]]
    assert stream_row.completion == (texts[0] if len(texts) == 1 else json.dumps(texts, ensure_ascii=False))
    assert stream_row.completion_tokens == whole["usage"]["completion_tokens"]
    assert stream_row.watermark_key_id == scheme.config()["key_id"]


def test_streamed_completions_equal_non_streamed(served):
    http, state, _, _, _ = served
    body = {"model": "tiny", "prompt": ["Once upon", "The sea"], "max_tokens": 12, "temperature": 0.8, "seed": 4,
            "logprobs": 1, "echo": True}
    whole = http.post("/completions", json=body).json()
    with http.stream("POST", "/completions", json={**body, "stream": True}) as resp:
        events = sse_events(resp)
    chunks = [e for _, e in events if isinstance(e, dict)]
    for choice in whole["choices"]:
        mine = [c["choices"][0] for c in chunks if c["choices"][0]["index"] == choice["index"]]
        assert "".join(c["text"] for c in mine) == choice["text"]
        assert [v for c in mine if c["logprobs"] for v in c["logprobs"]["token_logprobs"]] == \
            choice["logprobs"]["token_logprobs"]


def test_row_is_durable_before_done(served):
    http, state, _, _, _ = served
    before = state.request_log.count()
    seen = {}

    def check(event):
        if event == "[DONE]":
            seen["rows"] = state.request_log.count()

    with http.stream("POST", "/chat/completions", json={"model": "tiny", "messages": MSG, "max_tokens": 8,
                                                        "stream": True}) as resp:
        events = sse_events(resp, check)
    assert seen["rows"] == before + 1
    assert not any("usage" in e for _, e in events if isinstance(e, dict))  # only with include_usage
    row = state.request_log.query()[-1]
    assert row.completion == chat_text(events) and row.completion_tokens >= 1


def test_client_disconnect_stops_generation_and_is_logged(served):
    http, state, finished, slow, _ = served
    slow(0.05)   # 100 tokens would take 5 s
    body = {"model": "tiny", "messages": MSG, "max_tokens": 100, "temperature": 1.0, "seed": 2, "stream": True}
    got = []

    def three_tokens(event):
        if isinstance(event, dict) and event["choices"] and event["choices"][0]["delta"].get("content") is not None \
                and "role" not in event["choices"][0]["delta"]:
            got.append(event)
        return len(got) < 3

    t0 = time.perf_counter()
    with http.stream("POST", "/chat/completions", json=body) as resp:
        sse_events(resp, three_tokens)
    deadline = time.time() + 20
    while time.time() < deadline and not (finished and state.request_log.count(rejected=True)):
        time.sleep(0.05)
    (_, (gen,)), = finished
    assert gen.finish_reason == "cancelled" and gen.n_tokens < 100   # generation stopped early
    assert time.perf_counter() - t0 < 4
    (row,) = [r for r in state.request_log.query() if r.status >= 400]
    assert row.status == 499 and row.error == "client_disconnected" and row.stream and row.key_id
    assert 3 <= row.completion_tokens < 100 and row.completion.startswith("".join(
        e["choices"][0]["delta"]["content"] for e in got))
    # the server is fine afterwards
    slow(0.0)
    assert http.post("/chat/completions", json={"model": "tiny", "messages": MSG, "max_tokens": 4}).status_code == 200


def test_text_releaser_holds_back_partial_characters_and_stop_prefixes():
    pieces = {1: "ab", 2: "\ufffd", 3: "é", 4: "X", 5: "Y"}

    def decode(ids):   # token 2 + 3 decode together to "é"; token 2 alone is an incomplete character
        text = "".join(pieces[i] for i in ids)
        return text.replace("\ufffdé", "é")

    r = TextReleaser(decode, ("XY",))
    assert r.push(1) == ["ab"]
    assert r.push(2) == []            # incomplete character
    assert r.push(3) == ["", "é"]     # one piece per token, joined they are the text
    assert r.push(4) == []            # "X" may start the stop string "XY"
    assert r.push(5) == [] and r.stopped
    assert r.sent_text == "abé" and r.sent_tokens == 3


def test_streams_share_batches_with_other_requests(served):
    http, state, finished, slow, _ = served
    slow(0.01)
    import concurrent.futures

    def stream(i):
        body = {"model": "tiny", "messages": [{"role": "user", "content": f"q{i}"}], "max_tokens": 10,
                "temperature": 0.7, "stream": True}
        with http.stream("POST", "/chat/completions", json=body) as resp:
            return chat_text(sse_events(resp))

    def whole(i):
        body = {"model": "tiny", "messages": [{"role": "user", "content": f"w{i}"}], "max_tokens": 10,
                "temperature": 0.7}
        return http.post("/chat/completions", json=body).json()["choices"][0]["message"]["content"]

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        texts = list(pool.map(lambda i: stream(i) if i % 2 else whole(i), range(6)))
    assert max(len(out) for _, out in finished) > 1   # some generate call served several requests
    rows = {r.prompt: r for r in state.request_log.query()}
    for i, text in enumerate(texts):
        row = rows[json.dumps([{"role": "user", "content": f"{'q' if i % 2 else 'w'}{i}"}])]
        assert row.status == 200 and row.completion == text and row.stream == bool(i % 2)
