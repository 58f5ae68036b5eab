"""Gateway benchmark: overhead against a stub, and dynamic batching with the teacher.

    python bench/gateway/run.py            # full: stub overhead + smollm2 batching (a few minutes on 2 CPUs)
    python bench/gateway/run.py --quick    # smoke: fewer requests, the tiny teacher

Part 1 (stub): a bare stub OpenAI server ("direct") against the gateway serving the same stub
replies in process ("gateway": auth, limits, request-log row, metrics) and the gateway proxying
to the stub ("gateway → proxy"). Each server runs in its own process; latency is measured
sequentially over keep-alive connections (blocks alternate between servers so load drift hits
all of them alike), throughput with 8 concurrent clients. Added latency = gateway p50/p99 −
direct p50/p99 in the same run.

Part 2 (teacher): 8 concurrent clients against the gateway serving the default teacher
(watermarked), with dynamic batching (max batch 8) and one request at a time (max batch 1).

Part 3 (time to first token): one client at a time against the same teacher gateway; streamed
requests (time to the first content chunk, and to ``[DONE]``) against the same requests without
streaming (their latency is what time to first token was before the local teacher streamed).
``--ttft-only`` runs just this part and merges it into an existing results file.

Writes ``bench/results/gateway.json`` and prints the Markdown table of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results" / "gateway.json"
BODY = {"model": "stub-echo", "messages": [{"role": "user", "content": "benchmark the gateway please"}],
        "max_tokens": 16}


def _serve(kind: str, port: int, home: str, upstream: str | None) -> None:
    import logging

    import uvicorn

    from distillscope.gateway import StubBackend, create_app, stub_upstream_app
    from distillscope.settings import load_settings

    logging.disable(logging.WARNING)
    if kind == "direct":
        app = stub_upstream_app()
    elif kind == "gateway":
        app = create_app(load_settings(home=home), backend=StubBackend())
    else:
        app = create_app(load_settings(home=home, upstream_url=upstream))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False)


def _start(kind: str, home: Path, upstream: str | None = None) -> tuple[mp.Process, str]:
    from distillscope.gateway.server import free_port

    port = free_port()
    proc = mp.get_context("spawn").Process(target=_serve, args=(kind, port, str(home), upstream), daemon=True)
    proc.start()
    url = f"http://127.0.0.1:{port}"
    probe = "/v1/models" if kind == "direct" else "/healthz"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + probe, timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{kind} server did not start")


def _api_key(home: Path) -> str:
    from distillscope.gateway import AccountStore, Limits, make_engine

    store = AccountStore(make_engine(f"sqlite:///{home / 'gateway.sqlite'}"))
    store.create_account("bench", limits=Limits(rpm=None, tpm=None, max_concurrent=None))
    return store.create_key("bench")[0]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _latencies(targets: dict[str, tuple[str, dict]], n: int, block: int = 25) -> dict[str, list[float]]:
    clients = {k: httpx.Client(base_url=url, headers=h, timeout=30) for k, (url, h) in targets.items()}
    out: dict[str, list[float]] = {k: [] for k in targets}
    for c in clients.values():  # warm-up
        for _ in range(10):
            c.post("/v1/chat/completions", json=BODY).raise_for_status()
    for _ in range(0, n, block):
        for name, c in clients.items():
            for _ in range(block):
                t0 = time.perf_counter()
                c.post("/v1/chat/completions", json=BODY).raise_for_status()
                out[name].append((time.perf_counter() - t0) * 1000)
    for c in clients.values():
        c.close()
    return out


def _throughput(url: str, headers: dict, clients: int, per_client: int) -> float:
    def worker(_: int) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
            for _ in range(per_client):
                c.post("/v1/chat/completions", json=BODY).raise_for_status()

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, range(clients)))
    return clients * per_client / (time.perf_counter() - t0)


def bench_stub(quick: bool) -> dict:
    n, per_client = (100, 20) if quick else (300, 40)
    with tempfile.TemporaryDirectory() as tmp:
        direct, direct_url = _start("direct", Path(tmp) / "d")
        gw, gw_url = _start("gateway", Path(tmp) / "g")
        px, px_url = _start("proxy", Path(tmp) / "p", upstream=direct_url)
        try:
            auth_g = {"Authorization": f"Bearer {_api_key(Path(tmp) / 'g')}"}
            auth_p = {"Authorization": f"Bearer {_api_key(Path(tmp) / 'p')}"}
            targets = {"direct": (direct_url, {}), "gateway": (gw_url, auth_g), "gateway → proxy": (px_url, auth_p)}
            lat = _latencies(targets, n)
            rps = {name: _throughput(url, h, 8, per_client) for name, (url, h) in targets.items()}
        finally:
            for p in (direct, gw, px):
                p.kill()
    rows = {}
    for name, values in lat.items():
        rows[name] = {"p50_ms": statistics.median(values), "p99_ms": _pct(values, 0.99),
                      "requests_per_s": rps[name], "n": len(values)}
    for name in ("gateway", "gateway → proxy"):
        rows[name]["added_p50_ms"] = rows[name]["p50_ms"] - rows["direct"]["p50_ms"]
        rows[name]["added_p99_ms"] = rows[name]["p99_ms"] - rows["direct"]["p99_ms"]
    return rows


def _burst(url: str, key: str, model: str, clients: int, per_client: int, max_tokens: int) -> dict:
    import openai

    tokens = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        c = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=900)
        for j in range(per_client):
            r = c.chat.completions.create(model=model, max_tokens=max_tokens, temperature=0.7,
                                          messages=[{"role": "user", "content": f"Tell me a fact about {i}-{j}."}])
            with lock:
                tokens.append(r.usage.completion_tokens)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, range(clients)))
    seconds = time.perf_counter() - t0
    return {"requests_per_s": len(tokens) / seconds, "tokens_per_s": sum(tokens) / seconds,
            "seconds": seconds, "requests": len(tokens)}


def _ttft(url: str, key: str, model: str, max_tokens: int, n: int) -> dict:
    """Sequential streamed and whole requests (alternating); seconds to first content and to the end."""
    headers = {"Authorization": f"Bearer {key}"}
    first, last, whole, tokens = [], [], [], []
    with httpx.Client(base_url=url + "/v1", headers=headers, timeout=900) as c:
        for i in range(n):
            body = {"model": model, "max_tokens": max_tokens, "temperature": 0.7, "seed": i,
                    "messages": [{"role": "user", "content": f"Tell me a fact about {i}."}]}
            t0 = time.perf_counter()
            c.post("/chat/completions", json=body).raise_for_status()
            whole.append(time.perf_counter() - t0)
            t0, seen = time.perf_counter(), None
            with c.stream("POST", "/chat/completions", json={**body, "stream": True,
                                                             "stream_options": {"include_usage": True}}) as r:
                for line in r.iter_lines():
                    if seen is None and line.startswith("data: {") and '"content":"' in line \
                            and '"content":""' not in line:
                        seen = time.perf_counter() - t0
                    if line.startswith("data: {") and '"usage"' in line:
                        tokens.append(json.loads(line[6:])["usage"]["completion_tokens"])
            last.append(time.perf_counter() - t0)
            first.append(seen if seen is not None else last[-1])
    return {"requests": n, "max_tokens": max_tokens, "mean_completion_tokens": statistics.mean(tokens),
            "stream_first_token_s": statistics.median(first), "stream_last_token_s": statistics.median(last),
            "whole_answer_s": statistics.median(whole)}


def bench_ttft(quick: bool, spec: str, max_tokens: int | None = None) -> dict:
    from distillscope.gateway import AccountStore, BatchingConfig, Limits, LocalBackend, ServerThread, create_app
    from distillscope.settings import load_settings
    from distillscope.teacher import load_model
    from distillscope.watermark import WatermarkKey, make_scheme

    loaded = load_model(spec, settings=load_settings(), dtype="bfloat16" if spec != "tiny" else "float32")
    backend = LocalBackend.from_loaded(loaded, make_scheme("kgw", WatermarkKey.generate()),
                                       batching=BatchingConfig(max_batch=8, window_ms=20))
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(load_settings(home=tmp), backend=backend)
        with ServerThread(app) as server:
            store: AccountStore = app.state.gateway.store
            store.create_account("bench", limits=Limits(rpm=None, tpm=None, max_concurrent=None))
            key = store.create_key("bench")[0]
            out = _ttft(server.url, key, backend.info.model_ids[0], max_tokens or (16 if quick else 64),
                        3 if quick else 5)
    return {"teacher": loaded.name, **out}


def bench_teacher(quick: bool, spec: str, per_client: int | None = None, max_tokens: int | None = None) -> dict:
    from distillscope.gateway import (AccountStore, BatchingConfig, GatewayConfig, Limits, LocalBackend,
                                      ServerThread, create_app)
    from distillscope.settings import load_settings
    from distillscope.teacher import load_model
    from distillscope.watermark import WatermarkKey, make_scheme

    settings = load_settings()
    loaded = load_model(spec, settings=settings, dtype="bfloat16" if spec != "tiny" else "float32")
    scheme = make_scheme("kgw", WatermarkKey.generate())
    per_client = per_client or (1 if quick else 2)
    max_tokens = max_tokens or (8 if quick else 16)
    out = {"teacher": loaded.name, "clients": 8, "per_client": per_client, "max_tokens": max_tokens}
    for label, max_batch in (("one at a time", 1), ("dynamic batching", 8)):
        with tempfile.TemporaryDirectory() as tmp:
            backend = LocalBackend.from_loaded(loaded, scheme, batching=BatchingConfig(max_batch=max_batch,
                                                                                        window_ms=20))
            app = create_app(load_settings(home=tmp), backend=backend, config=GatewayConfig())
            with ServerThread(app) as server:
                store: AccountStore = app.state.gateway.store
                store.create_account("bench", limits=Limits(rpm=None, tpm=None, max_concurrent=None))
                key = store.create_key("bench")[0]
                out[label] = _burst(server.url, key, backend.info.model_ids[0], 8, per_client, max_tokens)
                out[label]["batch_sizes"] = dict(sorted(backend.batch_counts.items()))
    out["speedup"] = out["dynamic batching"]["requests_per_s"] / out["one at a time"]["requests_per_s"]
    return out


def table(res: dict) -> str:
    lines = ["| server (stub backend) | p50 ms | p99 ms | added p50 ms | added p99 ms | req/s (8 clients) |",
             "|---|---|---|---|---|---|"]
    for name, r in res["stub"].items():
        added = (f"{r['added_p50_ms']:+.2f} | {r['added_p99_ms']:+.2f}" if "added_p50_ms" in r else "— | —")
        lines.append(f"| {name} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {added} | {r['requests_per_s']:.0f} |")
    t = res["teacher"]
    lines += ["", f"| teacher {t['teacher']}, 8 concurrent clients, {t['max_tokens']} tokens | req/s | tokens/s "
              "| batch sizes (size: calls) |", "|---|---|---|---|"]
    for label in ("one at a time", "dynamic batching"):
        r = t[label]
        lines.append(f"| {label} | {r['requests_per_s']:.2f} | {r['tokens_per_s']:.1f} | {r['batch_sizes']} |")
    lines.append(f"| **speed-up** | **{t['speedup']:.1f}×** | | |")
    if "ttft" in res:
        lines += ["", ttft_table(res["ttft"])]
    return "\n".join(lines)


def ttft_table(t: dict) -> str:
    return "\n".join([
        f"| teacher {t['teacher']}, one client, {t['max_tokens']} tokens max (mean {t['mean_completion_tokens']:.0f}), "
        f"median of {t['requests']} | seconds |", "|---|---|",
        f"| streamed: first token | {t['stream_first_token_s']:.2f} |",
        f"| streamed: last chunk | {t['stream_last_token_s']:.2f} |",
        f"| not streamed: whole answer (= time to first token before streaming) | {t['whole_answer_s']:.2f} |"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests and the tiny teacher (smoke test)")
    parser.add_argument("--teacher", default=None, help="teacher spec (default: smollm2; tiny with --quick)")
    parser.add_argument("--per-client", type=int, default=None, help="teacher requests per client (default 2)")
    parser.add_argument("--max-tokens", type=int, default=None, help="tokens per teacher answer (default 16)")
    parser.add_argument("--out", default=str(RESULTS), help="JSON results file")
    parser.add_argument("--ttft-only", action="store_true",
                        help="only time to first token; merged into the existing results file")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    spec = args.teacher or ("tiny" if args.quick else "smollm2")
    if args.ttft_only:
        out = Path(args.out)
        res = json.loads(out.read_text()) if out.exists() else {}
        res["ttft"] = bench_ttft(args.quick, spec, args.max_tokens)
        res["ttft"]["load_avg"] = os.getloadavg()[0]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=2, ensure_ascii=False))
        print(ttft_table(res["ttft"]))
        return
    res = {"machine": {"cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg()[0],
                       "python": platform.python_version(), "platform": platform.platform()},
           "quick": args.quick, "stub": bench_stub(args.quick)}
    res["teacher"] = bench_teacher(args.quick, spec, args.per_client, args.max_tokens)
    res["ttft"] = bench_ttft(args.quick, spec, args.max_tokens)
    res["machine"]["load_avg_at_end"] = os.getloadavg()[0]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2, ensure_ascii=False))
    print(table(res))
    print(f"\nresults written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
