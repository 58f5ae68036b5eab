"""Proxy-mode throughput of the gateway in front of a stub upstream, this code against a baseline.

    python bench/gateway/throughput.py --baseline-src /tmp/gw-old/src [--postgres URL --redis URL]

Every server is its own process (uvicorn, one worker): the bare stub upstream ("direct"), and the
gateway in proxy mode in front of it, once with this checkout's code and once with the code under
``--baseline-src`` (e.g. ``git archive <commit> src | tar -x -C /tmp/old``), each with the durable
SQLite log and, with ``--postgres``/``--redis``, with PostgreSQL + Redis. The account has limits
(rpm/tpm/concurrency, high enough never to refuse), so the limiter works as in production.
Throughput: ``--clients`` threads with keep-alive connections; latency: one client, sequential,
blocks alternating between servers. Ratios are taken within the same run.
Writes ``bench/results/gateway_throughput.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results" / "gateway_throughput.json"
BODY = {"model": "stub-echo", "messages": [{"role": "user", "content": "benchmark the gateway please"}],
        "max_tokens": 16, "user": "bench-end-user"}

_SERVE = """
import logging, sys, uvicorn
logging.disable(logging.WARNING)
kind, port, home, upstream, db, redis = sys.argv[1:7]
from distillscope.gateway import create_app, stub_upstream_app
from distillscope.settings import load_settings
if kind == "direct":
    app = stub_upstream_app()
else:
    extra = {k: v for k, v in (("database_url", db), ("redis_url", redis)) if v != "-"}
    app = create_app(load_settings(home=home, upstream_url=upstream, **extra))
uvicorn.run(app, host="127.0.0.1", port=int(port), log_level="error", access_log=False)
"""

_KEY = """
import sys
from distillscope.gateway import AccountStore, Limits, make_engine, upgrade_database
home, db = sys.argv[1:3]
engine = make_engine(db if db != "-" else f"sqlite:///{home}/gateway.sqlite")
upgrade_database(engine)
store = AccountStore(engine)
store.create_account("bench", limits=Limits(rpm=10**9, tpm=2 * 10**9, max_concurrent=10**6))
print(store.create_key("bench")[0])
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(src: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(src), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def start(kind: str, src: Path, home: Path, upstream: str = "-", db: str = "-", redis: str = "-"
          ) -> tuple[subprocess.Popen, str, dict]:
    home.mkdir(parents=True, exist_ok=True)
    headers = {}
    if kind != "direct":
        key = subprocess.run([sys.executable, "-c", _KEY, str(home), db], env=_env(src), check=True,
                             capture_output=True, text=True).stdout.strip().splitlines()[-1]
        headers = {"Authorization": f"Bearer {key}"}
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", _SERVE, kind, str(port), str(home), upstream, db, redis],
                            env=_env(src))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/v1/models", headers=headers, timeout=2).status_code == 200:
                return proc, url, headers
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{kind} server ({src}) did not start")


def throughput(url: str, headers: dict, clients: int, per_client: int) -> float:
    def worker(_: int) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
            for _ in range(per_client):
                c.post("/v1/chat/completions", json=BODY).raise_for_status()

    worker(0) if per_client == 0 else None
    with httpx.Client(base_url=url, headers=headers, timeout=60) as c:  # warm-up
        for _ in range(20):
            c.post("/v1/chat/completions", json=BODY).raise_for_status()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, range(clients)))
    return clients * per_client / (time.perf_counter() - t0)


def latencies(targets: dict[str, tuple[str, dict]], n: int, block: int = 25) -> dict[str, float]:
    clients = {k: httpx.Client(base_url=u, headers=h, timeout=30) for k, (u, h) in targets.items()}
    out: dict[str, list[float]] = {k: [] for k in targets}
    for _ in range(0, n, block):
        for name, c in clients.items():
            for _ in range(block):
                t0 = time.perf_counter()
                c.post("/v1/chat/completions", json=BODY).raise_for_status()
                out[name].append((time.perf_counter() - t0) * 1000)
    for c in clients.values():
        c.close()
    return {k: statistics.median(v) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-src", required=True, help="src/ directory of the code to compare with")
    parser.add_argument("--postgres", default=None, help="also run with this PostgreSQL URL (+ --redis)")
    parser.add_argument("--redis", default=None, help="Redis URL for the PostgreSQL runs")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--per-client", type=int, default=60)
    parser.add_argument("--latency-n", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2, help="throughput rounds, alternating servers")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    new_src, old_src = ROOT / "src", Path(args.baseline_src).resolve()
    procs = []
    res: dict = {"machine": {"cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg()[0],
                             "python": platform.python_version()},
                 "clients": args.clients, "per_client": args.per_client}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            direct, direct_url, _ = start("direct", new_src, Path(tmp) / "direct")
            procs.append(direct)
            targets = {"direct": (direct_url, {})}
            variants = [("sqlite", "-", "-")]
            if args.postgres:
                variants.append(("postgres+redis", args.postgres, args.redis or "-"))
            for store, db, redis in variants:
                for label, src in (("baseline", old_src), ("new", new_src)):
                    if db != "-":  # a fresh schema per server: reuse the URL's database, new search_path
                        schema = f"bench_{label}_{int(time.time() * 1000) % 10**8}"
                        import sqlalchemy as sa

                        eng = sa.create_engine(db)
                        with eng.begin() as conn:
                            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
                        eng.dispose()
                        sep = "&" if "?" in db else "?"
                        db_url = f"{db}{sep}options=-csearch_path%3D{schema}"
                    else:
                        db_url = "-"
                    proc, url, headers = start("proxy", src, Path(tmp) / f"{store}-{label}", direct_url, db_url,
                                               redis)
                    procs.append(proc)
                    targets[f"proxy {store} {label}"] = (url, headers)
            rps: dict[str, list[float]] = {k: [] for k in targets}
            for _ in range(args.rounds):
                for name, (url, headers) in targets.items():
                    rps[name].append(throughput(url, headers, args.clients, args.per_client))
            p50 = latencies(targets, args.latency_n)
        finally:
            for p in procs:
                p.kill()
    rows = {}
    for name in targets:
        rows[name] = {"requests_per_s": max(rps[name]), "rounds": rps[name], "p50_ms": p50[name],
                      "added_p50_ms": p50[name] - p50["direct"]}
    for store, *_ in variants:
        new, old = rows[f"proxy {store} new"], rows[f"proxy {store} baseline"]
        new["speedup_vs_baseline"] = new["requests_per_s"] / old["requests_per_s"]
    res["servers"] = rows
    res["machine"]["load_avg_at_end"] = os.getloadavg()[0]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2))
    print(f"| server (proxy in front of the stub, {args.clients} clients) | req/s | × baseline | p50 ms "
          "| added p50 ms |\n|---|---|---|---|---|")
    for name, r in rows.items():
        speed = f"{r['speedup_vs_baseline']:.2f}×" if "speedup_vs_baseline" in r else "—"
        print(f"| {name} | {r['requests_per_s']:.0f} | {speed} | {r['p50_ms']:.2f} | {r['added_p50_ms']:+.2f} |")


if __name__ == "__main__":
    main()
