"""An independent, labelled request log for evaluating traffic forensics (written without the
project's simulator, behaviours or features).

    python bench/traffic/independent/generate.py --out DIR --seed 1              # benign + campaigns
    python bench/traffic/independent/generate.py --out DIR --seed 2 --benign-only   # calibration log

Writes to DIR:

* ``log.parquet``        the request log, in the columns of ``distillscope logs export`` plus ``user``
                         (the OpenAI end-user field) and ``finish_reason``;
* ``labels.json``        run config; per account its label (benign kind or campaign + strategy, network);
                         campaigns with their accounts; per reseller end user its label;
* ``row_labels.parquet`` per request: label (benign/distiller), campaign, kind.

Deterministic per seed. Two seeds share the grammar but not all its phrasings (each seed keeps
~75% of the alternatives at every choice point), so one seed can calibrate and another test.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from adversaries import build_campaigns  # noqa: E402
from benign import build_benign  # noqa: E402
from completion import Answerer, endpoint_prompt  # noqa: E402
from world import CHAT, Request, World  # noqa: E402

log = logging.getLogger("independent_traffic")

START = datetime(2026, 3, 2, tzinfo=timezone.utc)     # a Monday
VERSION = "1"

LOG_SCHEMA = pa.schema([
    ("request_id", pa.string()), ("ts", pa.timestamp("us", tz="UTC")), ("account_id", pa.string()),
    ("key_id", pa.string()), ("client_ip", pa.string()), ("user_agent", pa.string()), ("endpoint", pa.string()),
    ("model", pa.string()), ("params", pa.string()), ("temperature", pa.float64()), ("max_tokens", pa.int64()),
    ("logprobs", pa.int64()), ("logit_bias", pa.bool_()), ("stream", pa.bool_()), ("prompt", pa.string()),
    ("completion", pa.string()), ("prompt_tokens", pa.int64()), ("completion_tokens", pa.int64()),
    ("latency_ms", pa.float64()), ("status", pa.int64()), ("error", pa.string()),
    ("watermark_key_id", pa.string()), ("user", pa.string()), ("finish_reason", pa.string()),
])
ROW_LABEL_SCHEMA = pa.schema([("request_id", pa.string()), ("account_id", pa.string()), ("user", pa.string()),
                              ("label", pa.string()), ("campaign", pa.string()), ("kind", pa.string())])


def _failed_auth(world: World, n: int) -> None:
    """Scanners and stale keys: rows without an account (status 401)."""
    rng = world.rng("failed-auth")
    ips = [world.space.cloud() for _ in range(12)] + [world.space.residential() for _ in range(30)]
    for _ in range(n):
        t = rng.uniform(0, world.horizon)
        world.requests.append(Request(t=t, account=None, endpoint=CHAT, model=rng.choice(("gpt-4", "atlas-pro", "gpt-3.5-turbo")),
                                      messages=[{"role": "user", "content": rng.choice(("hi", "test", "ping", "hello"))}],
                                      prompt_text=None, params={}, out="prose", out_tokens=0, ip=rng.choice(ips),
                                      status=401, error="invalid_api_key", row_kind="failed_auth"))


def _errors(world: World) -> None:
    """Rate limits for bursty high-volume keys, oversize prompts, a few upstream failures."""
    rng = world.rng("errors")
    last: dict[str, list[float]] = {}
    for req in sorted(world.requests, key=lambda r: r.t):
        if req.account is None:
            continue
        window = last.setdefault(req.key_id or "", [])
        window.append(req.t)
        while window and window[0] < req.t - 60:
            window.pop(0)
        roll = rng.random()
        if len(window) > 60 and roll < 0.3:
            req.status, req.error = 429, "rate_limited"
        elif roll < 0.0015:
            req.status, req.error = 502, "upstream_error"
        elif roll < 0.002:
            req.status, req.error = 400, "context_length_exceeded"


def _row(req: Request, answer: dict, rid: str) -> dict:
    p = {k: v for k, v in req.params.items() if not k.startswith("_")}
    p["model"] = req.model
    if req.user is not None:
        p["user"] = req.user
    top = p.get("top_logprobs") if req.endpoint == CHAT else p.get("logprobs")
    return {
        "request_id": rid, "ts": START + timedelta(seconds=req.t),
        "account_id": req.account.account_id if req.account else None, "key_id": req.key_id,
        "client_ip": req.ip, "user_agent": req.account.ua if req.account else "python-requests/2.31.0",
        "endpoint": req.endpoint, "model": req.model, "params": json.dumps(p, sort_keys=True),
        "temperature": p.get("temperature"), "max_tokens": p.get("max_tokens"),
        "logprobs": int(top or 0) if not isinstance(top, bool) else 0, "logit_bias": "logit_bias" in p,
        "stream": bool(p.get("stream")), "prompt": endpoint_prompt(req), **answer,
        "status": req.status, "error": req.error, "watermark_key_id": None, "user": req.user,
    }


def generate(out: Path, *, seed: int, days: int, benign_accounts: int, benign_only: bool,
             campaign_scale: float = 1.0) -> dict:
    t_start = time.perf_counter()
    world = World(seed=seed, days=days)
    build_benign(world, benign_accounts)
    if not benign_only:
        build_campaigns(world, campaign_scale)
    _failed_auth(world, max(5, benign_accounts // 20))
    _errors(world)
    t_built = time.perf_counter()
    answerer = Answerer(world)
    rng = world.rng("answers")
    world.requests.sort(key=lambda r: r.t)
    rows, row_labels = [], []
    for req in world.requests:
        rid = world.new_id("req_", rng, 64)
        rows.append(_row(req, answerer.answer(req, rng), rid))
        row_labels.append({"request_id": rid, "account_id": rows[-1]["account_id"], "user": req.user,
                           "label": req.row_label, "campaign": req.row_campaign, "kind": req.row_kind})
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=LOG_SCHEMA), out / "log.parquet", compression="zstd")
    pq.write_table(pa.Table.from_pylist(row_labels, schema=ROW_LABEL_SCHEMA), out / "row_labels.parquet",
                   compression="zstd")
    rows_per = Counter(r["account_id"] for r in rows)
    accounts = {a.account_id: {**a.label, "requests": rows_per.get(a.account_id, 0)}
                for a in sorted(world.accounts, key=lambda a: a.account_id)}
    config = {"seed": seed, "days": days, "benign_accounts": benign_accounts, "benign_only": benign_only,
              "campaign_scale": campaign_scale, "start": START.isoformat(), "generator_version": VERSION}
    summary = summarise(accounts, rows, world)
    dist_rows = Counter(world.campaigns[r["campaign"]]["strategy"] for r in row_labels if r["label"] == "distiller")
    summary["distiller_rows_by_strategy"] = dict(sorted(dist_rows.items()))
    labels = {"config": config, "summary": summary, "accounts": accounts, "campaigns": world.campaigns,
              "end_users": world.end_users}
    (out / "labels.json").write_text(json.dumps(labels, indent=1, sort_keys=True, default=str))
    summary["seconds"] = {"build": round(t_built - t_start, 1), "total": round(time.perf_counter() - t_start, 1)}
    log.info("wrote %d rows, %d accounts to %s in %.1fs", len(rows), len(accounts), out, summary["seconds"]["total"])
    return summary


def summarise(accounts: dict, rows: list[dict], world: World) -> dict:
    by_kind: Counter = Counter()
    rows_kind: Counter = Counter()
    for info in accounts.values():
        key = info.get("kind") if info["label"] == "benign" else "distiller:" + info["strategy"]
        by_kind[key] += 1
        rows_kind[key] += info["requests"]
    return {"rows": len(rows), "accounts": len(accounts),
            "benign_accounts": sum(1 for a in accounts.values() if a["label"] == "benign"),
            "distiller_accounts": sum(1 for a in accounts.values() if a["label"] == "distiller"),
            "campaigns": len(world.campaigns),
            "accounts_by_kind": dict(sorted(by_kind.items())), "rows_by_kind": dict(sorted(rows_kind.items())),
            "failed_auth_rows": sum(1 for r in rows if r["account_id"] is None)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="output directory (created)")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--benign-accounts", type=int, default=6000)
    ap.add_argument("--benign-only", action="store_true", help="no campaigns (a calibration log)")
    ap.add_argument("--campaign-scale", type=float, default=1.0,
                    help="multiply campaign sizes (accounts, volume) by this; 1 = the documented sizes")
    args = ap.parse_args(argv)
    if args.days < 1 or args.benign_accounts < 50 or args.campaign_scale <= 0:
        ap.error("need --days >= 1, --benign-accounts >= 50 and --campaign-scale > 0")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    summary = generate(args.out, seed=args.seed, days=args.days, benign_accounts=args.benign_accounts,
                       benign_only=args.benign_only, campaign_scale=args.campaign_scale)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
