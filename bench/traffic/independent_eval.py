"""Final held-out measurement on the independent labelled log (bench/traffic/independent, another
engineer's generator, never used for design or tuning): calibrate on its benign-only log, scan its
labelled log with the defaults (DuckDB), report per strategy and the benign FPR.

    python bench/traffic/independent/generate.py --out DIR/cal --seed 2 --benign-only
    python bench/traffic/independent/generate.py --out DIR/test --seed 1
    python bench/traffic/independent_eval.py DIR            # -> bench/results/traffic_independent.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from distillscope.traffic import calibrate, scan


def _labels(path: Path) -> pd.DataFrame:
    d = json.loads((path / "labels.json").read_text())
    rows = [{"account_id": a, "label": v.get("label"), "kind": v.get("kind"), "strategy": v.get("strategy"),
             "campaign": v.get("campaign")} for a, v in d["accounts"].items()]
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--out", default="bench/results/traffic_independent.json")
    args = ap.parse_args()
    t0 = time.perf_counter()
    cal = calibrate(args.dir / "cal" / "log.parquet")
    t_cal = time.perf_counter() - t0
    res = scan(args.dir / "test" / "log.parquet", cal)
    t_scan = time.perf_counter() - t0 - t_cal
    lab = _labels(args.dir / "test")
    by = {a.account_id: a for a in res.accounts}
    lab = lab[lab.account_id.isin(by)].copy()
    lab["flagged"] = lab.account_id.map(lambda a: by[a].flagged)
    lab["score"] = lab.account_id.map(lambda a: by[a].score)
    lab["reason"] = lab.account_id.map(lambda a: by[a].reason)
    benign = lab[lab.label == "benign"]
    out: dict = {"per_strategy": {}, "benign": {}, "unavailable_features": res.unavailable,
                 "seconds": {"calibrate": t_cal, "scan": t_scan}, "alpha": cal.config.alpha,
                 "n_reference": cal.n_reference}
    for s, part in lab[lab.label == "distiller"].groupby("strategy"):
        camps = part.groupby("campaign").flagged.mean()
        auc = stats.mannwhitneyu(part.score, benign.score, alternative="greater").statistic / (len(part) * len(benign))
        out["per_strategy"][s] = {"accounts": int(len(part)), "flagged": int(part.flagged.sum()),
                                  "campaigns": int(len(camps)), "campaigns_caught": int((camps >= 0.9).sum()),
                                  "auc": float(auc), "reasons": part[part.flagged].reason.value_counts().to_dict()}
    k, n = int(benign.flagged.sum()), len(benign)
    out["benign"] = {"accounts": n, "flagged": k, "fpr": k / n,
                     "fpr_95_upper": float(stats.beta.ppf(0.975, k + 1, n - k)),
                     "flagged_kinds": benign[benign.flagged].kind.value_counts().to_dict()}
    dist = lab[lab.label == "distiller"]
    camps = dist.groupby("campaign").flagged.mean()
    out["overall"] = {"distiller_accounts": int(len(dist)), "flagged": int(dist.flagged.sum()),
                      "campaigns": int(len(camps)), "campaigns_caught": int((camps >= 0.9).sum()),
                      "top100_distillers": int((lab.sort_values("score", ascending=False).head(100).label
                                                == "distiller").sum())}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1, default=float))
    print(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
