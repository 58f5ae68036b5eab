"""Generate the default pair of independent logs and record what they hold.

    python bench/traffic/independent/run.py [--out out/independent]

Seed 1 (benign + campaigns) is the test log, seed 2 (benign only) the calibration log. Writes
``bench/results/independent_traffic.json`` (row and account counts per kind and per strategy,
the campaigns, generation time) and prints the markdown tables of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generate import generate  # noqa: E402

ROOT = HERE.parents[2]


def _tables(full: dict, benign: dict, campaigns: dict) -> str:
    lines = ["| benign kind | accounts (seed 1) | rows (seed 1) | accounts (seed 2, benign only) | rows (seed 2) |",
             "|---|---|---|---|---|"]
    for kind in sorted(k for k in full["accounts_by_kind"] if not k.startswith("distiller:")):
        lines.append(f"| {kind} | {full['accounts_by_kind'][kind]:,} | {full['rows_by_kind'][kind]:,} | "
                     f"{benign['accounts_by_kind'].get(kind, 0):,} | {benign['rows_by_kind'].get(kind, 0):,} |")
    lines += ["", "| strategy | campaigns | accounts | rows of those accounts | distiller rows |", "|---|---|---|---|---|"]
    per: dict[str, list[str]] = {}
    for cid, c in campaigns.items():
        per.setdefault(c["strategy"], []).append(cid)
    for strategy, cids in per.items():
        k = "distiller:" + strategy
        lines.append(f"| {strategy} | {len(cids)} | {full['accounts_by_kind'][k]:,} | {full['rows_by_kind'][k]:,} | "
                     f"{full['distiller_rows_by_strategy'][strategy]:,} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "independent")
    args = ap.parse_args()
    runs = {}
    for name, seed, benign_only in (("seed1", 1, False), ("seed2-benign", 2, True)):
        t0, c0 = time.perf_counter(), time.process_time()
        summary = generate(args.out / name, seed=seed, days=14, benign_accounts=6000, benign_only=benign_only)
        summary["wall_s"] = round(time.perf_counter() - t0, 1)
        summary["cpu_s"] = round(time.process_time() - c0, 1)
        summary["files"] = {f.name: f.stat().st_size for f in sorted((args.out / name).iterdir())}
        runs[name] = summary
    campaigns = json.loads((args.out / "seed1" / "labels.json").read_text())["campaigns"]
    camp_rows = {cid: {"strategy": c["strategy"], "accounts": len(c["accounts"]),
                       **{k: v for k, v in c.items() if k not in ("accounts", "strategy")}} for cid, c in campaigns.items()}
    result = {"command": "python bench/traffic/independent/run.py", "machine": f"{platform.machine()}, shared 2-core box",
              "runs": runs, "campaigns": camp_rows}
    path = ROOT / "bench" / "results" / "independent_traffic.json"
    path.write_text(json.dumps(result, indent=1, sort_keys=True))
    print(_tables(runs["seed1"], runs["seed2-benign"], campaigns))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
