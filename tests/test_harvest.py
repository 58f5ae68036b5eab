"""Harvesting against a scripted OpenAI-compatible server on 127.0.0.1 (a real uvicorn in a thread):
retries on 429/5xx/timeouts, key rotation, log-probs and token ids, preflight errors, resume
after a hard kill of a subprocess, and the CLI."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from distillscope.cli import main
from distillscope.distill import HarvestConfig, HarvestStore, PromptGenerator, harvest, plan_harvest
from distillscope.errors import DistillError

GOOD_KEYS = ("sk-good-0", "sk-good-1", "sk-good-2")


def _tid(word: str) -> int:
    return int(hashlib.sha256(word.encode()).hexdigest()[:6], 16) % 50_000


@dataclass
class Script:
    """What the fake endpoint does: per prompt, a queue of actions before it answers normally."""

    actions: dict[str, list[str]] = field(default_factory=dict)
    valid_keys: set[str] = field(default_factory=lambda: set(GOOD_KEYS))
    models: tuple[str, ...] = ("teacher", "other")
    reject_token_ids: bool = False
    delay: float = 0.0
    models_actions: list[str] = field(default_factory=list)
    chat_keys: set[str] | None = None  # keys chat accepts (None: valid_keys), to revoke after preflight
    calls: list[tuple[str, str]] = field(default_factory=list)  # (key, prompt) per chat request
    seen_bodies: list[dict] = field(default_factory=list)


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "test"}}, status_code=status, headers=headers)


def _answer(body: dict, prompt: str) -> dict:
    words = f"echo {prompt}".split()[: body.get("max_tokens", 16)]
    as_ids = body.get("return_tokens_as_token_ids", False)
    k = body.get("top_logprobs") or 0
    name = (lambda w: f"token_id:{_tid(w)}") if as_ids else (lambda w: w)
    content = [{"token": name(w), "logprob": -0.1,
                "top_logprobs": [{"token": name(w if j == 0 else f"{w}~{j}"), "logprob": -0.1 - j} for j in range(k)]}
               for w in words]
    return {"id": "x", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": " ".join(words)},
                         "logprobs": {"content": content} if body.get("logprobs") else None,
                         "finish_reason": "length"}],
            "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(words)}}


def make_app(script: Script) -> FastAPI:
    app = FastAPI()

    def key_of(request: Request) -> str:
        return request.headers.get("authorization", "").removeprefix("Bearer ")

    @app.get("/v1/models")
    async def models(request: Request):
        if key_of(request) not in script.valid_keys:
            return _error(401, "Incorrect API key provided")
        if script.models_actions and script.models_actions.pop(0) == "503":
            return _error(503, "warming up", {"retry-after": "0.05"})
        return {"object": "list", "data": [{"id": m, "object": "model", "root": f"org/{m}"} for m in script.models]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        key, prompt = key_of(request), body["messages"][-1]["content"]
        script.calls.append((key, prompt))
        script.seen_bodies.append(body)
        if key not in (script.valid_keys if script.chat_keys is None else script.chat_keys):
            return _error(401, f"Incorrect API key provided: {key}")
        if script.reject_token_ids and "return_tokens_as_token_ids" in body:
            return _error(400, "Unrecognized request argument supplied: return_tokens_as_token_ids")
        if script.delay:
            await asyncio.sleep(script.delay)
        queue = script.actions.get(prompt, [])
        action = queue.pop(0) if queue else "ok"
        if action.startswith("429"):
            return _error(429, "Rate limit reached", {"retry-after": action.split(":")[1]} if ":" in action else None)
        if action == "500":
            return _error(500, "internal error")
        if action == "503":
            return _error(503, "overloaded")
        if action == "sleep":
            await asyncio.sleep(3.0)
        if action == "garbage":
            return JSONResponse({"nope": True})
        return _answer(body, prompt)

    return app


class Server:
    def __init__(self, script: Script) -> None:
        self.script = script
        config = uvicorn.Config(make_app(script), host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "Server":
        self.thread.start()
        deadline = time.time() + 10
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1"
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(5)


@pytest.fixture
def server():
    with Server(Script()) as srv:
        yield srv


def config(srv: Server, **kw) -> HarvestConfig:
    base = dict(base_url=srv.url, model="teacher", api_keys=[GOOD_KEYS[0]], max_tokens=8, concurrency=4,
                backoff_base=0.01, backoff_max=0.05, request_timeout=2.0, max_retries=4, batch_size=4)
    base.update(kw)
    return HarvestConfig(**base)


def lines(store: Path) -> list[dict]:
    return [json.loads(x) for x in (store / "records.jsonl").read_text().splitlines() if x.strip()]


# --- the happy path ---------------------------------------------------------------------------

def test_harvest_records_completions_logprobs_and_token_ids(server, tmp_path):
    items = PromptGenerator(seed=3).generate(12)
    s = harvest(config(server, logprobs=3, cost_per_1k_completion=2.0), items, tmp_path / "h")
    assert (s.total, s.ok, s.failed, s.skipped, s.not_attempted) == (12, 12, 0, 0, 0)
    assert s.token_ids is True
    store = HarvestStore(tmp_path / "h")
    manifest = store.manifest()
    assert manifest["format"] == "distillscope-harvest" and manifest["model"] == "teacher"
    assert manifest["tokenizer_hint"] == "org/teacher" and GOOD_KEYS[0] not in json.dumps(manifest)
    recs = {r.prompt: r for r in store.ok_records()}
    assert set(recs) == {i.prompt for i in items}
    item = items[0]
    rec = recs[item.prompt]
    words = f"echo {item.prompt}".split()[:8]
    assert rec.completion == " ".join(words)
    assert rec.token_ids == tuple(_tid(w) for w in words)
    assert rec.tokens[0] == f"token_id:{_tid('echo')}"
    assert len(rec.top_logprob_ids) == len(words) and len(rec.top_logprob_ids[0]) == 3
    assert rec.top_logprob_ids[0][0] == (_tid("echo"), -0.1)
    assert (rec.category, rec.topic, rec.template_id) == (item.category, item.topic, item.template_id)
    assert rec.key_alias == "key-0" and rec.attempts == 1
    assert s.completion_tokens == sum(r.usage["completion_tokens"] for r in recs.values())
    assert s.cost == pytest.approx(s.completion_tokens / 1000 * 2.0)
    assert store.stats().n_ok == 12


def test_token_ids_fall_back_when_the_endpoint_rejects_the_field(tmp_path):
    with Server(Script(reject_token_ids=True)) as srv:
        s = harvest(config(srv, logprobs=2), ["What is entropy?"], tmp_path / "h")
        assert s.ok == 1 and s.token_ids is False
        rec = next(HarvestStore(tmp_path / "h").ok_records())
        assert rec.tokens == ("echo", "What", "is", "entropy?") and rec.token_ids is None
        assert rec.top_logprobs[0][1] == ("echo~1", -1.1) and rec.top_logprob_ids is None
        with pytest.raises(DistillError, match="probe request"):
            harvest(config(srv, logprobs=2, token_ids=True), ["other"], tmp_path / "h2")


# --- retries and failure records --------------------------------------------------------------

def test_429_5xx_and_timeouts_are_retried_and_recorded(tmp_path):
    script = Script(actions={"p-429": ["429:0.3", "429"], "p-5xx": ["500", "503", "500"], "p-slow": ["sleep"],
                             "p-dead": ["500"] * 10, "p-garbage": ["garbage"] * 10})
    with Server(script) as srv:
        t0 = time.monotonic()
        s = harvest(config(srv, request_timeout=1.5, max_retries=3),  # margin for a loaded machine
                    ["p-429", "p-5xx", "p-slow", "p-dead", "p-garbage", "p-fine"], tmp_path / "h")
    assert (s.ok, s.failed) == (4, 2)
    assert s.failed_by_reason == {"server_error": 1, "bad_response": 1}
    recs = {r.prompt: r for r in HarvestStore(tmp_path / "h").records()}
    assert recs["p-429"].ok and recs["p-429"].attempts == 3
    assert recs["p-5xx"].ok and recs["p-5xx"].attempts == 4
    assert recs["p-slow"].ok and recs["p-slow"].attempts == 2
    assert recs["p-fine"].attempts == 1
    dead = recs["p-dead"]
    assert dead.status == "failed" and dead.completion is None and dead.attempts == 4
    assert (dead.error.type, dead.error.status, dead.error.message) == ("server_error", 500, "internal error")
    assert recs["p-garbage"].error.type == "bad_response"
    assert time.monotonic() - t0 >= 0.3  # the retry-after of 0.3 s was honoured
    assert Counter(p for _, p in script.calls)["p-dead"] == 4


def test_resume_retries_failed_records_and_the_reader_keeps_the_latest(tmp_path):
    script = Script(actions={"flaky": ["500"] * 3})
    with Server(script) as srv:
        s1 = harvest(config(srv, max_retries=1), ["flaky", "fine"], tmp_path / "h")
        assert (s1.ok, s1.failed) == (1, 1)
        plan = plan_harvest(config(srv), ["flaky", "fine", "new", "new"], tmp_path / "h")
        assert (plan.total, plan.done, plan.retry, plan.new, plan.duplicates) == (3, 1, 1, 1, 1)
        s2 = harvest(config(srv, max_retries=1), ["flaky", "fine"], tmp_path / "h")
    assert (s2.skipped, s2.ok, s2.failed) == (1, 1, 0)
    store = HarvestStore(tmp_path / "h")
    assert [r.status for r in store.records(latest=False)].count("failed") == 1
    assert {r.prompt: r.status for r in store.records()} == {"flaky": "ok", "fine": "ok"}
    assert Counter(p for _, p in script.calls)["fine"] == 1


# --- keys ------------------------------------------------------------------------------------

def test_round_robin_and_sticky_topic_rotation(tmp_path):
    items = PromptGenerator(seed=5, categories=["qa"]).generate(30)
    script = Script()
    with Server(script) as srv:
        harvest(config(srv, api_keys=GOOD_KEYS, concurrency=1), items, tmp_path / "rr")
        used = Counter(k for k, _ in script.calls)
        assert set(used.values()) == {10}
        script.calls.clear()
        harvest(config(srv, api_keys=GOOD_KEYS, rotation="sticky-topic", max_tokens=9), items, tmp_path / "st")
    by_topic = defaultdict(set)
    for r in HarvestStore(tmp_path / "st").records():
        by_topic[r.topic].add(r.key_alias)
    assert all(len(aliases) == 1 for aliases in by_topic.values())
    assert len({a for s in by_topic.values() for a in s}) > 1


def test_a_rejected_key_is_retired_and_never_leaks(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    script = Script(valid_keys={GOOD_KEYS[0]})
    with Server(script) as srv:
        s = harvest(config(srv, api_keys=[GOOD_KEYS[0], "sk-secret-revoked"], concurrency=1),
                    [f"q{i}" for i in range(6)], tmp_path / "h")
    assert s.ok == 6 and s.failed == 0 and s.retired_keys == ("key-1",)
    assert Counter(k for k, _ in script.calls)["sk-secret-revoked"] == 1
    text = (tmp_path / "h" / "records.jsonl").read_text() + (tmp_path / "h" / "manifest.json").read_text()
    assert "sk-secret-revoked" not in text and GOOD_KEYS[0] not in text
    assert "key-1 rejected" in caplog.text  # the server echoed the key in its 401 message ...
    assert "sk-secret-revoked" not in caplog.text and GOOD_KEYS[0] not in caplog.text  # ... redacted


def test_rejected_keys_do_not_use_up_the_retry_budget(tmp_path):
    keys = [GOOD_KEYS[0], "sk-bad-1", "sk-bad-2", "sk-bad-3"]
    with Server(Script(models_actions=["503", "503"])) as srv:  # preflight also rides out a 503
        s = harvest(config(srv, api_keys=keys, concurrency=1, max_retries=0), [f"q{i}" for i in range(5)],
                    tmp_path / "h")
    assert (s.ok, s.failed, s.stopped) == (5, 0, None)
    assert s.retired_keys == ("key-1", "key-2", "key-3")
    assert s.requests == 5 + 3


def test_all_keys_rejected_mid_run_stops_with_explicit_failures(tmp_path):
    script = Script()
    with Server(script) as srv:
        cfg = config(srv, concurrency=1)
        items = [f"q{i}" for i in range(20)]

        async def revoke_soon():
            while len(script.calls) < 5:
                await asyncio.sleep(0.005)
            script.valid_keys.clear()

        script.delay = 0.01
        threading.Thread(target=lambda: asyncio.run(revoke_soon()), daemon=True).start()
        s = harvest(cfg, items, tmp_path / "h")
    assert s.stopped and "rejected" in s.stopped and s.retired_keys == ("key-0",)
    assert s.ok >= 4 and s.failed == 1 and s.failed_by_reason == {"key_rejected": 1}
    assert s.not_attempted == 20 - s.ok - 1
    failed = [r for r in HarvestStore(tmp_path / "h").records() if not r.ok]
    assert failed[0].error.status == 401 and "sk-good-0" not in failed[0].error.message


# --- preflight and bad input ------------------------------------------------------------------

@pytest.mark.parametrize("kw, match", [
    ({"api_keys": ["sk-wrong"]}, "rejected API key key-0"),
    ({"model": "missing-model"}, "does not serve model 'missing-model'"),
    ({"base_url": "http://127.0.0.1:9/v1"}, "cannot reach the endpoint"),
])
def test_preflight_fails_before_any_work(server, tmp_path, kw, match):
    with pytest.raises(DistillError, match=match) as info:
        harvest(config(server, **kw), ["hello"], tmp_path / "h")
    assert "sk-wrong" not in str(info.value)
    assert not (tmp_path / "h").exists() and server.script.calls == []


def test_foreign_and_corrupt_stores_are_refused(server, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DistillError, match="not a harvest store"):
        harvest(config(server), ["hi"], foreign)
    (foreign / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(DistillError, match="format 'something-else'"):
        harvest(config(server), ["hi"], foreign)
    harvest(config(server), ["a", "b"], tmp_path / "h")
    with pytest.raises(DistillError, match="harvested with params"):
        harvest(config(server, temperature=0.1), ["a"], tmp_path / "h")
    recs = tmp_path / "h" / "records.jsonl"
    good = recs.read_text().splitlines()
    recs.write_text(good[0] + "\nnot json\n" + good[1] + "\n")
    with pytest.raises(DistillError, match="line 2 is not valid JSON"):
        harvest(config(server), ["c"], tmp_path / "h")
    assert server.script.calls.count(("sk-good-0", "c")) == 0


def test_bad_config_values_name_the_fix():
    with pytest.raises(DistillError, match="logprobs=50"):
        HarvestConfig(base_url="http://x/v1", model="m", api_keys=["k"], logprobs=50)
    with pytest.raises(DistillError, match="no API key"):
        HarvestConfig(base_url="http://x/v1", model="m", api_keys=[])
    with pytest.raises(DistillError, match="not an http"):
        HarvestConfig(base_url="ftp://x", model="m", api_keys=["k"])
    assert HarvestConfig(base_url="http://h:1", model="m", api_keys="k").base_url == "http://h:1/v1"
    assert "sk-zzz" not in repr(HarvestConfig(base_url="http://h:1", model="m", api_keys=["sk-zzz"]))


# --- kill and resume --------------------------------------------------------------------------

@pytest.mark.slow
def test_resume_after_the_process_is_killed_mid_run(tmp_path):
    script = Script(delay=0.03)
    store = tmp_path / "h"
    n = 80
    with Server(script) as srv:
        cmd = [sys.executable, "-m", "distillscope", "harvest", "--endpoint", srv.url, "--model", "teacher",
               "--generate", str(n), "--seed", "11", "--out", str(store), "--concurrency", "4",
               "--max-tokens", "6", "--logprobs", "2"]
        env = {**os.environ, "DISTILLSCOPE_HARVEST_API_KEYS": GOOD_KEYS[0]}
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while time.time() < deadline:
            path = store / "records.jsonl"
            if path.exists() and path.read_text().count("\n") >= 12:
                break
            if proc.poll() is not None:
                pytest.fail(f"harvest exited early: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        before = lines(store)
        assert 12 <= len(before) < n
        with open(store / "records.jsonl", "ab") as fh:  # a torn write, as a kill mid-append leaves
            fh.write(b'{"id": "abc", "status": "o')
        assert HarvestStore(store).stats().torn_tail
        calls_before = len(script.calls)
        code = main(["harvest", "--endpoint", srv.url, "--model", "teacher", "--generate", str(n), "--seed", "11",
                     "--out", str(store), "--concurrency", "4", "--max-tokens", "6", "--logprobs", "2",
                     "--api-key", GOOD_KEYS[0]])
        assert code == 0
    after = lines(store)
    ids = [r["id"] for r in after]
    assert len(ids) == len(set(ids)) == n  # no duplicates, no loss
    assert [r["id"] for r in after[: len(before)]] == [r["id"] for r in before]  # old data untouched
    assert all(r["status"] == "ok" for r in after)
    assert {r["prompt"] for r in after} == {i.prompt for i in PromptGenerator(seed=11).generate(n)}
    assert len(script.calls) - calls_before <= n - len(before) + 1  # only the missing ones (+ the probe)
    assert not HarvestStore(store).stats().torn_tail


@pytest.mark.slow
def test_sigterm_stops_the_cli_cleanly(tmp_path):
    with Server(Script(delay=0.03)) as srv:
        store = tmp_path / "h"
        cmd = [sys.executable, "-m", "distillscope", "harvest", "--endpoint", srv.url, "--model", "teacher",
               "--generate", "200", "--out", str(store), "--concurrency", "2", "--max-tokens", "4"]
        proc = subprocess.Popen(cmd, env={**os.environ, "DISTILLSCOPE_HARVEST_API_KEYS": GOOD_KEYS[0]},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while not ((store / "records.jsonl").exists() and (store / "records.jsonl").read_text().count("\n") >= 5):
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 130
        assert "interrupted" in proc.stderr.read().decode()
    raw = (store / "records.jsonl").read_bytes()
    assert raw.endswith(b"\n") and 5 <= raw.count(b"\n") < 200


# --- our own gateway ----------------------------------------------------------------------------

def test_harvest_through_the_distillscope_gateway(tmp_path):
    from distillscope.gateway import Limits, ServerThread, StubBackend, create_app
    from distillscope.settings import load_settings

    app = create_app(load_settings(home=tmp_path / "gw"), backend=StubBackend())
    with ServerThread(app) as srv:
        gw = app.state.gateway
        gw.store.create_account("rival", limits=Limits(rpm=None, tpm=None, max_concurrent=None))
        keys = [gw.store.create_key("rival")[0] for _ in range(2)]
        items = PromptGenerator(seed=9).generate(10)
        s = harvest(HarvestConfig(base_url=srv.url, model="stub-echo", api_keys=keys, max_tokens=8, logprobs=2),
                    items, tmp_path / "h")
    assert (s.ok, s.failed, s.token_ids) == (10, 0, True)
    recs = list(HarvestStore(tmp_path / "h").ok_records())
    assert {r.key_alias for r in recs} == {"key-0", "key-1"}
    assert all(r.completion.startswith("echo: ") and r.token_ids and len(r.top_logprob_ids[0]) == 2 for r in recs)


# --- the docs' examples run -------------------------------------------------------------------

def test_python_examples_in_docs_run(server, tmp_path, monkeypatch, capsys):
    text = (Path(__file__).parent.parent / "docs" / "distill.md").read_text()
    harvest_half = text.split("\n## Training and evaluation")[0]  # the training half is tested by its owner
    blocks = re.findall(r"```python\n(.*?)```", harvest_half, flags=re.S)
    assert len(blocks) == 3
    code = "\n".join(blocks).replace("http://127.0.0.1:8000/v1", server.url).replace('"sk-..."', f'"{GOOD_KEYS[0]}"')
    code = code.replace('model="smollm2"', 'model="teacher"')
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/distill.md", "exec"), {})
    assert HarvestStore(tmp_path / "runs" / "harvest").stats().n_ok == 200
    assert "echo" in capsys.readouterr().out


# --- CLI ------------------------------------------------------------------------------------

def test_cli_harvest_from_a_prompt_file_and_prompts_generate(server, tmp_path, capsys):
    prompts = tmp_path / "p.jsonl"
    assert main(["prompts", "generate", "5", "--out", str(prompts), "--seed", "4", "--categories", "math"]) == 0
    rows = [json.loads(x) for x in prompts.read_text().splitlines()]
    assert len(rows) == 5 and all(r["category"] == "math" and r["answer"] for r in rows)
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# campaign keys\n{GOOD_KEYS[0]}\n{GOOD_KEYS[1]}\n")
    code = main(["harvest", "--endpoint", server.url, "--model", "teacher", "--api-keys-file", str(keys),
                 "--prompts", str(prompts), "--out", str(tmp_path / "h"), "--max-tokens", "4"])
    out = capsys.readouterr()
    assert code == 0 and "completion tokens" in out.out
    code = main(["harvest", "--endpoint", server.url, "--model", "teacher", "--api-keys-file", str(keys),
                 "--prompts", str(prompts), "--out", str(tmp_path / "h"), "--max-tokens", "4", "--plan"])
    assert code == 0 and "already ok (skipped)" in capsys.readouterr().out
    recs = list(HarvestStore(tmp_path / "h").records())
    assert {r.template_id for r in recs} == {r["template_id"] for r in rows}
    assert {r.key_alias for r in recs} == {"key-0", "key-1"}


def test_cli_exit_code_when_every_key_is_revoked(tmp_path, capsys):
    with Server(Script(chat_keys=set())) as srv:
        code = main(["harvest", "--endpoint", srv.url, "--model", "teacher", "--api-key", GOOD_KEYS[0],
                     "--generate", "4", "--out", str(tmp_path / "h"), "--concurrency", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "stopped:" in err and "re-run to resume" in err and GOOD_KEYS[0] not in err
    assert HarvestStore(tmp_path / "h").stats().failed_by_reason == {"key_rejected": 1}


def test_cli_errors_are_one_line(server, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"prompt": \n')
    code = main(["harvest", "--endpoint", server.url, "--model", "teacher", "--api-key", "k",
                 "--prompts", str(bad), "--out", str(tmp_path / "h")])
    err = capsys.readouterr().err
    assert code == 2 and "line 2 is not valid JSON" in err and "Traceback" not in err
    code = main(["harvest", "--endpoint", server.url, "--model", "teacher", "--api-key", "k", "--generate", "0",
                 "--out", str(tmp_path / "h")])
    assert code == 2 and "no prompts to harvest" in capsys.readouterr().err
    code = main(["harvest", "--endpoint", server.url, "--model", "nope", "--api-key", GOOD_KEYS[0],
                 "--generate", "3", "--out", str(tmp_path / "h")])
    err = capsys.readouterr().err
    assert code == 2 and "does not serve model 'nope'" in err
    assert len([x for x in err.splitlines() if x.strip()]) == 1
