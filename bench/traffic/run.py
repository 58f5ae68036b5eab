"""Traffic-forensics benchmark: detection quality per campaign strategy and batch throughput.

    python bench/traffic/run.py                      # full run (>= 10,000 accounts), DuckDB + Spark
    python bench/traffic/run.py --benign 2000 --no-spark   # quick look

Writes bench/results/traffic.json. Thresholds come from a separate benign-only simulation
(different seed) -- never from the scanned log. Requests-until-detection replays the campaign
accounts and a sample of the other accounts through the real-time guard.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from distillscope.traffic import SimulationConfig, TrafficGuard, calibrate, scan, simulate
from distillscope.traffic.engines import make_engine
from distillscope.traffic.features import (SQL_COLUMNS, coordination_keys_sql, coordination_pairs_sql,
                                           entity_features_sql)
from distillscope.traffic.prepare import prepare
from distillscope.traffic.distribution import DISTRIBUTION_FEATURE, DistributionConfig, RandomFeatures, distribution_sql
from distillscope.traffic.reference import benign_reference_config
from distillscope.traffic.schema import load_log

STRATEGIES = ("single", "paraphrase", "hydra", "hydra-cover")


def distribution_flags(res, cal) -> set[str]:
    """Accounts the distribution test alone flags: volume-normalised kernel MMD beyond every benign
    reference account (the smallest attainable per-feature p-value), with at least min_requests requests."""
    acc = res.account_features.reset_index(drop=True)
    z = cal.z(acc)[DISTRIBUTION_FEATURE].to_numpy()
    ref = cal.feature_z.get(DISTRIBUTION_FEATURE, [])
    top = max(ref) if ref else np.inf
    hit = (np.nan_to_num(z, nan=-np.inf) > top) & (acc.n_requests.to_numpy() >= cal.config.min_requests)
    return set(acc.account_id[hit])


def quality(res, labels: pd.DataFrame, cal=None) -> dict:
    flagged = {a.account_id for a in res.flagged_accounts}
    seen = {a.account_id for a in res.accounts}
    lab = labels[labels.account_id.isin(seen)].copy()
    lab["flagged"] = lab.account_id.isin(flagged)
    lab["mmd_flagged"] = lab.account_id.isin(distribution_flags(res, cal)) if cal is not None else False
    innocent_flagged = int(lab.flagged[lab.label_kind != "distiller"].sum())
    out: dict = {"per_strategy": {}, "per_kind_fpr": {}}
    for s in STRATEGIES:
        part = lab[lab.label_strategy == s]
        camps = part.groupby("label_campaign").flagged.mean()
        mmd_camps = part.groupby("label_campaign").mmd_flagged.mean()
        tp = int(part.flagged.sum())
        out["per_strategy"][s] = {
            "accounts": int(len(part)), "account_recall": float(part.flagged.mean()),
            "campaigns": int(len(camps)), "campaign_recall": float((camps >= 0.9).mean()),
            # precision of a log holding only this strategy's campaigns and all the innocents
            "precision": tp / max(1, tp + innocent_flagged),
            "mmd_account_recall": float(part.mmd_flagged.mean()),
            "mmd_campaign_recall": float((mmd_camps >= 0.9).mean())}
    for k in ("benign", "batch", "eval", "student"):
        part = lab[lab.label_kind == k]
        out["per_kind_fpr"][k] = {"accounts": int(len(part)), "flagged": int(part.flagged.sum()),
                                  "fpr": float(part.flagged.mean()) if len(part) else 0.0,
                                  "mmd_flagged": int(part.mmd_flagged.sum()),
                                  "mmd_fpr": float(part.mmd_flagged.mean()) if len(part) else 0.0}
    innocent = lab[lab.label_kind != "distiller"]
    dist = lab[lab.label_kind == "distiller"]
    camps = dist.groupby("label_campaign").flagged.mean()
    out["overall"] = {"accounts": int(len(lab)), "innocent_accounts": int(len(innocent)),
                      "benign_account_fpr": float(innocent.flagged.mean()),
                      "false_positives": int(innocent.flagged.sum()),
                      "account_recall": float(dist.flagged.mean()),
                      "campaign_recall": float((camps >= 0.9).mean()),
                      "precision": float(dist.flagged.sum() / max(1, lab.flagged.sum())),
                      "mmd_account_recall": float(dist.mmd_flagged.mean()),
                      "mmd_campaign_recall": float((dist.groupby("label_campaign").mmd_flagged.mean() >= 0.9).mean()),
                      "mmd_false_positives": int(innocent.mmd_flagged.sum()),
                      "mmd_benign_account_fpr": float(innocent.mmd_flagged.mean())}
    # how far the calls are from the threshold: own score / account threshold
    own = pd.Series({a.account_id: a.score for a in res.accounts}) / max(res.account_threshold, 1e-12)
    lab["own"] = lab.account_id.map(own)
    out["score_margins"] = {"innocent_max": float(innocent.merge(lab[["account_id", "own"]]).own.max()),
                            **{f"{s}_min": float(lab.own[lab.label_strategy == s].min()) for s in STRATEGIES}}
    missed = camps[camps < 0.9].index
    out["missed_campaigns"] = {c: {"strategy": str(dist.label_strategy[dist.label_campaign == c].iloc[0]),
                                   "accounts": int((dist.label_campaign == c).sum()),
                                   "flagged_share": float(camps[c])} for c in missed}
    return out


def until_detection(cal, sim, sample: float, seed: int = 0) -> dict:
    labels = sim.labels.to_pandas()
    rng = np.random.default_rng(seed)
    others = labels.account_id[labels.label_kind != "distiller"]
    keep = set(labels.account_id[labels.label_kind == "distiller"]) | set(others[rng.random(len(others)) < sample])
    log = sim.log.filter(pc.is_in(sim.log.column("account_id"), pa.array(sorted(keep))))
    guard = TrafficGuard(cal)
    seen: dict[str, int] = {}
    first: dict[str, dict[str, int]] = {}
    t0 = time.perf_counter()
    for row in log.to_pylist():
        acct = row["account_id"]
        seen[acct] = seen.get(acct, 0) + 1
        for a in guard.observe(row):
            first.setdefault(a.target_id, {}).setdefault(a.state.value, seen.get(a.target_id, 0))
    seconds = time.perf_counter() - t0
    lab = labels.set_index("account_id")
    out: dict = {"replayed_rows": log.num_rows, "guard_us_per_request": 1e6 * seconds / max(1, log.num_rows),
                 "innocent_actioned": int(sum(1 for a in first if lab.label_kind[a] != "distiller")),
                 "per_strategy": {}}
    for s in STRATEGIES:
        accts = [a for a in lab.index[lab.label_strategy == s] if a in seen]
        thr = [first[a]["throttled"] for a in accts if "throttled" in first.get(a, {})]
        rev = [first[a]["revoked"] for a in accts if "revoked" in first.get(a, {})]
        total = [seen[a] for a in accts]
        out["per_strategy"][s] = {
            "accounts": len(accts), "throttled": len(thr), "revoked": len(rev),
            "median_requests_until_throttle": float(np.median(thr)) if thr else None,
            "median_requests_until_revoke": float(np.median(rev)) if rev else None,
            "median_requests_per_account": float(np.median(total)) if total else None}
    return out


def throughput(prepared: pa.Table, engine_name: str, **options) -> dict:
    slim = prepared.select(list(SQL_COLUMNS))
    eng = make_engine(engine_name, **options)
    try:
        eng.run(entity_features_sql(), {"requests": slim.slice(0, 1000)})   # warm-up (JVM, plans)
        t0 = time.perf_counter()
        eng.run(entity_features_sql(), {"requests": slim})
        dist = DistributionConfig()
        eng.run(distribution_sql(RandomFeatures.draw(dist), dist), {"requests": slim})
        rare = eng.run(coordination_keys_sql(), {"requests": slim})
        eng.run(coordination_pairs_sql(), {"rare_keys": rare})
        seconds = time.perf_counter() - t0
    finally:
        eng.close()
    return {"rows": slim.num_rows, "seconds": seconds, "rows_per_s": slim.num_rows / seconds}


def markdown(r: dict) -> str:
    """The docs/benchmarks.md table for one result."""
    q, u = r["quality"], r["until_detection"]
    lines = [f"Simulated log: {r['log']['rows']:,} requests, {r['log']['accounts']:,} accounts "
             f"({q['overall']['innocent_accounts']:,} benign incl. hard negatives); thresholds from a separate "
             f"benign-only simulation of {r['log']['reference_accounts']:,} accounts. Machine: {r['machine']}.",
             "", "| strategy | accounts | campaigns | campaign recall | account recall | precision | "
             "MMD test alone: campaign / account recall | median requests until throttle / revoke (guard) |",
             "|---|---|---|---|---|---|---|---|"]
    for s, v in q["per_strategy"].items():
        g = u["per_strategy"][s]
        lines.append(f"| {s} | {v['accounts']} | {v['campaigns']} | {v['campaign_recall']:.1%} | "
                     f"{v['account_recall']:.1%} | {v['precision']:.1%} | {v['mmd_campaign_recall']:.1%} / "
                     f"{v['mmd_account_recall']:.1%} | {g['median_requests_until_throttle']} / "
                     f"{g['median_requests_until_revoke']} (of {g['median_requests_per_account']}) |")
    lines += ["", "| benign kind | accounts | flagged | FPR | MMD test alone: flagged (FPR) |", "|---|---|---|---|---|"]
    for k, v in q["per_kind_fpr"].items():
        lines.append(f"| {k} | {v['accounts']} | {v['flagged']} | {v['fpr']:.2%} | {v['mmd_flagged']} "
                     f"({v['mmd_fpr']:.2%}) |")
    o = q["overall"]
    lines += ["", f"Overall: campaign recall {o['campaign_recall']:.1%}, account recall {o['account_recall']:.1%}, "
              f"precision {o['precision']:.1%}, benign-account FPR {o['benign_account_fpr']:.3%} "
              f"({o['false_positives']} of {o['innocent_accounts']}); guard replay of {u['replayed_rows']:,} rows: "
              f"{u['innocent_actioned']} innocent accounts actioned, {u['guard_us_per_request']:.0f} µs/request. "
              f"Distribution (MMD) test alone: campaign recall {o['mmd_campaign_recall']:.1%}, account recall "
              f"{o['mmd_account_recall']:.1%}, benign-account FPR {o['mmd_benign_account_fpr']:.3%} "
              f"({o['mmd_false_positives']} of {o['innocent_accounts']}). Own score / account threshold: highest "
              f"innocent {q['score_margins']['innocent_max']:.2f}, lowest single-account extractor "
              f"{q['score_margins']['single_min']:.2f}.",
              "", "| throughput | rows | seconds | rows/s |", "|---|---|---|---|"]
    e = r["scan_duckdb_end_to_end"]
    lines.append(f"| scan end to end, DuckDB (load, text prep, SQL, scoring) | {e['rows']:,} | {e['seconds']:.1f} | "
                 f"{e['rows_per_s']:,.0f} |")
    for name, t in r["sql_throughput"].items():
        lines.append(f"| feature + distribution + coordination SQL, {name} | {t['rows']:,} | {t['seconds']:.1f} | "
                     f"{t['rows_per_s']:,.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benign", type=int, default=9500)
    ap.add_argument("--reference", type=int, default=5000, help="benign users in the calibration reference")
    ap.add_argument("--campaigns", type=int, default=10, help="campaigns per strategy")
    ap.add_argument("--guard-sample", type=float, default=0.1, help="share of non-campaign accounts replayed")
    ap.add_argument("--seed", type=int, default=2026, help="seed of the scanned log (the reference uses 99)")
    ap.add_argument("--no-spark", action="store_true")
    ap.add_argument("--markdown", action="store_true", help="print the docs table of the existing JSON")
    ap.add_argument("--guard-only", action="store_true",
                    help="re-measure only requests-until-detection and update the existing JSON")
    ap.add_argument("--out", default="bench/results/traffic.json")
    args = ap.parse_args()
    if args.markdown:
        print(markdown(json.loads(Path(args.out).read_text())))
        return
    timings = {}
    t = time.perf_counter()
    ref = simulate(benign_reference_config(n_benign=args.reference, seed=99))
    cal = calibrate(ref.log)
    timings["calibration_s"] = time.perf_counter() - t
    cfg = SimulationConfig(n_benign=args.benign, n_batch=args.benign // 100, n_eval=args.benign // 200,
                           n_student_groups=max(1, args.benign // 1000),
                           campaigns=tuple((s, args.campaigns) for s in STRATEGIES), seed=args.seed)
    t = time.perf_counter()
    sim = simulate(cfg)
    timings["simulate_s"] = time.perf_counter() - t
    if args.guard_only:
        result = json.loads(Path(args.out).read_text())
        result["until_detection"] = until_detection(cal, sim, args.guard_sample)
        Path(args.out).write_text(json.dumps(result, indent=1))
        print(json.dumps(result["until_detection"], indent=1))
        return
    t = time.perf_counter()
    res = scan(sim.log, cal, "duckdb")
    scan_s = time.perf_counter() - t
    labels = sim.labels.to_pandas()
    result = {"machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores (shared)",
              "log": {"rows": sim.log.num_rows, "accounts": int(labels.account_id.nunique()), "seed": args.seed,
                      "reference_accounts": cal.n_reference},
              "thresholds": {"account": cal.account_threshold, "campaign": cal.campaign_threshold,
                             "alpha": cal.config.alpha},
              "quality": quality(res, labels, cal)}
    result["scan_duckdb_end_to_end"] = {"rows": sim.log.num_rows, "seconds": scan_s,
                                        "rows_per_s": sim.log.num_rows / scan_s}
    prepared = prepare(load_log(sim.log))
    result["sql_throughput"] = {"duckdb": throughput(prepared, "duckdb")}
    if not args.no_spark:
        result["sql_throughput"]["spark"] = throughput(prepared, "spark", master="local[*]", shuffle_partitions=4)
    elif Path(args.out).is_file():   # keep the last Spark measurement of the same log
        old = json.loads(Path(args.out).read_text()).get("sql_throughput", {}).get("spark")
        if old and old.get("rows") == result["log"]["rows"]:
            result["sql_throughput"]["spark"] = dict(old, carried_over=True)
    result["until_detection"] = until_detection(cal, sim, args.guard_sample)
    result["timings"] = timings
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
