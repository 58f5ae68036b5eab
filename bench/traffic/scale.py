"""Traffic-forensics batch throughput at scale: simulate, load, prepare, feature SQL, full scan.

    python bench/traffic/scale.py --rows 10000000                  # the issue's 10M-row run
    python bench/traffic/scale.py --rows 1000000 --spark-rows 300000 # quicker look
    python bench/traffic/scale.py --markdown                         # rewrite the docs section only
    python bench/traffic/scale.py --rows 10000000 --spark-only --dir /tmp/scale   # Spark on the full log

``--spark-only`` keeps the DuckDB results already in ``--out`` (a run of the same ``--rows``),
simulates the same log again (same seed; row, account and distinct-prompt counts are checked
against that run) and measures Spark on it at full size: load, prepare, DuckDB's and Spark's
feature SQL (so that ratio comes from one run) and Spark's full scan (its ratio is to the
recorded DuckDB scan of the same log, an earlier run; both load averages are recorded). It
exists because both full scans in one process do not fit in this machine's memory.

Writes bench/results/traffic_scale.json and the ``traffic-scale`` section of docs/benchmarks.md.
The log is simulated with the proportions of bench/traffic/run.py (benign users, hard negatives,
four campaign strategies) scaled to ``--rows``, streamed to Parquet. DuckDB runs every step on
the full log; Spark (local mode) runs on a log of ``--spark-rows`` rows (default: the same log),
on which DuckDB is measured again so that the Spark/DuckDB ratio comes from one run and one log.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from distillscope.traffic import SimulationConfig, calibrate, scan, simulate
from distillscope.traffic.engines import make_engine
from distillscope.traffic.features import (SQL_COLUMNS, coordination_keys_sql, coordination_pairs_sql,
                                           entity_features_sql)
from distillscope.traffic.prepare import prepare
from distillscope.traffic.reference import benign_reference_config
from distillscope.traffic.schema import SCAN_COLUMNS, load_log
from distillscope.traffic.simulate import simulate_to_file

STRATEGIES = ("single", "paraphrase", "hydra", "hydra-cover")
BASE_ROWS = 339_299          # rows of bench/traffic/run.py's log (9,500 benign users, 4 campaigns per strategy)
SECTION = "traffic-scale"


def scaled_config(rows: int, seed: int = 2026) -> SimulationConfig:
    """run.py's population scaled to about ``rows`` requests."""
    f = rows / BASE_ROWS
    benign = max(50, round(9500 * f))
    return SimulationConfig(n_benign=benign, n_batch=max(1, benign // 100), n_eval=max(1, benign // 200),
                            n_student_groups=max(1, benign // 1000),
                            campaigns=tuple((s, max(1, round(4 * f))) for s in STRATEGIES), seed=seed)


def hardware() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"machine": platform.machine(), "cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem, 1),
            "note": "cores shared with other jobs; load average recorded per step"}


def timed(fn, rows: int) -> tuple[object, dict]:
    t0 = time.perf_counter()
    out = fn()
    s = time.perf_counter() - t0
    return out, {"rows": rows, "seconds": round(s, 2), "rows_per_s": round(rows / s), "load_avg": os.getloadavg()[0]}


def feature_sql(slim, engine) -> None:
    """Account features, coordination keys and pairs: the SQL of one scan (campaign SQL aside)."""
    engine.run(entity_features_sql(), {"requests": slim})
    rare = engine.run(coordination_keys_sql(), {"requests": slim})
    engine.run(coordination_pairs_sql(), {"rare_keys": rare})


def measure_log(path: Path, cal, engines: dict, steps: dict, on_step=lambda: None,
                scan_engines: tuple[str, ...] | None = None) -> dict:
    """load, prepare, feature SQL and full scan of one log on each engine (name -> engine); the full
    scan only on ``scan_engines`` (default: every engine)."""
    log, load = timed(lambda: load_log(path, columns=SCAN_COLUMNS), 0)
    n = log.num_rows
    steps["load"] = {**load, "rows": n, "rows_per_s": round(n / load["seconds"])}
    info = {"rows": n, "accounts": pc.count_distinct(log.table.column("account_id")).as_py(),
            "distinct_prompts": pc.count_distinct(log.table.column("prompt")).as_py()}
    info["distinct_prompt_fraction"] = round(info["distinct_prompts"] / n, 4)
    on_step()
    prepared, steps["prepare"] = timed(lambda: prepare(log), n)
    on_step()
    slim = prepared.select(list(SQL_COLUMNS))
    del prepared, log
    gc.collect()
    for name, eng in engines.items():
        _, steps[f"feature_sql_{name}"] = timed(lambda: feature_sql(slim, eng), n)
        on_step()
        if hasattr(eng, "clear"):
            eng.clear()
    del slim
    gc.collect()
    for name, eng in engines.items():
        if scan_engines is not None and name not in scan_engines:
            continue
        _, steps[f"scan_{name}"] = timed(lambda: scan(load_log(path, columns=SCAN_COLUMNS), cal, eng), n)
        on_step()
        if hasattr(eng, "clear"):
            eng.clear()
        gc.collect()
    return info


def markdown(r: dict) -> str:
    s, sp = r["steps"], r.get("spark")
    lines = [f"`python bench/traffic/scale.py --rows {r['requested_rows']}` (JSON in `bench/results/traffic_scale.json`). "
             f"Simulated log of {r['rows']:,} requests from {r['accounts']:,} accounts, "
             f"{r['distinct_prompts']:,} distinct prompts ({r['distinct_prompt_fraction']:.0%} of rows: text "
             f"preparation works per distinct prompt, so this share sets its cost). Machine: {r['hardware']['cpu']}, "
             f"{r['hardware']['cores']} cores shared with other jobs (load average {r['load_avg_range'][0]:.1f}–"
             f"{r['load_avg_range'][1]:.1f} during the run), {r['hardware']['memory_gib']} GiB; peak memory "
             f"{r['peak_rss_gib']} GiB.", "",
             "| step (DuckDB, full log) | rows | seconds | rows/s |", "|---|---|---|---|"]
    names = {"simulate": "simulate (streamed to Parquet)", "load": "load + validate", "prepare":
             "prepare (text columns, MinHash/LSH)", "feature_sql_duckdb": "feature + coordination SQL",
             "scan_duckdb": "full scan (load, prepare, SQL, clusters, scoring)"}
    for key, label in names.items():
        v = s.get(key)
        if v is None:
            lines.append(f"| {label} | – | not measured (see notes) | – |")
            continue
        lines.append(f"| {label} | {v['rows']:,} | {v['seconds']:,.1f} | {v['rows_per_s']:,} |")
    if sp:
        same = "the same log" if sp["same_log"] else f"a separately simulated log of {sp['rows']:,} rows"
        lines += ["", f"Spark local mode (`local[*]`, {sp['shuffle_partitions']} shuffle partitions, driver memory "
                  f"{sp['driver_memory']}) against DuckDB on {same}"
                  + (f" ({sp['why_smaller']})" if sp.get("why_smaller") else "")
                  + f"; Spark session start {sp['session_start_s']:.0f} s, not counted:", "",
                  "| step | rows | DuckDB s | Spark s | Spark / DuckDB |", "|---|---|---|---|---|"]
        for key, label in (("feature_sql", "feature + coordination SQL"), ("scan", "full scan")):
            d, k = sp["steps"].get(f"{key}_duckdb"), sp["steps"][f"{key}_spark"]
            if d is None:   # --spark-only: DuckDB's full scan of the same log is the main run's
                d, label = s[f"{key}_duckdb"], f"{label} (DuckDB: the main run above)"
            lines.append(f"| {label} | {k['rows']:,} | {d['seconds']:,.1f} | {k['seconds']:,.1f} | "
                         f"{sp['ratio_spark_over_duckdb'][key]:.1f}× |")
        if sp.get("spark_only"):
            lines += ["", f"Spark rows/s on the full log: feature SQL {sp['steps']['feature_sql_spark']['rows_per_s']:,}, "
                      f"full scan {sp['steps']['scan_spark']['rows_per_s']:,} (load average "
                      f"{sp['steps']['scan_spark']['load_avg']:.1f}"
                      + (f", driver memory {sp['driver_memory_scan']}" if sp.get("driver_memory_scan") else "")
                      + "; the log simulated again with the same seed "
                      + (f"matched the DuckDB run: {sp.get('log_check') or 'rows, accounts and distinct prompts'})."
                         if sp.get("log_matches") else "did NOT match the DuckDB run's counts: compare with care).")]
    if r.get("notes"):
        lines += [""] + [f"- {n}" for n in r["notes"]]
    return "\n".join(lines)


def write_section(md: str, path: Path = Path("docs/benchmarks.md")) -> None:
    """Replace (or append) only this benchmark's section; other sections are edited concurrently."""
    start, end = f"<!-- section: {SECTION} -->", f"<!-- /section: {SECTION} -->"
    block = f"{start}\n### Traffic forensics at scale (`bench/traffic/scale.py`)\n\n{md}\n{end}"
    text = path.read_text()
    if start in text and end in text:
        text = text[:text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000, help="about this many requests")
    ap.add_argument("--spark-rows", type=int, default=None, help="rows of the Spark comparison (default: --rows)")
    ap.add_argument("--no-spark", action="store_true")
    ap.add_argument("--why-smaller", default="", help="reason recorded when --spark-rows < --rows")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="simulator processes")
    ap.add_argument("--dir", default=None, help="where the simulated logs go (default: a temporary directory)")
    ap.add_argument("--out", default="bench/results/traffic_scale.json")
    ap.add_argument("--duckdb-memory", default="5GB",
                    help="DuckDB memory_limit; it spills beyond it (its default, 80%% of RAM, ignores the Arrow "
                         "tables Python holds and got a 10M-row run OOM-killed)")
    ap.add_argument("--note", action="append", default=[], help="a remark recorded with the results (repeatable)")
    ap.add_argument("--markdown", action="store_true", help="only rewrite the docs section from the JSON")
    ap.add_argument("--spark-only", action="store_true",
                    help="keep the DuckDB results of --out and measure Spark on the same log at full size")
    ap.add_argument("--spark-driver-memory", default="6g", help="Spark local mode's driver (and only JVM) heap")
    ap.add_argument("--resume", action="store_true",
                    help="keep the Spark and simulate results of --out and the log in --dir; measure the rest")
    args = ap.parse_args()
    if args.markdown:
        write_section(markdown(json.loads(Path(args.out).read_text())))
        return
    work = Path(args.dir or tempfile.mkdtemp(prefix="distillscope-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    result: dict = {"requested_rows": args.rows, "hardware": hardware(),
                    "versions": {p: version(p) for p in ("distillscope", "duckdb", "pyarrow", "pyspark", "datasketch")},
                    "notes": ["Peak memory is the Python process's; the Spark JVM (local mode) is a separate process.",
                              *args.note]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(out.read_text()) if args.resume and out.exists() else {}
    if previous.get("requested_rows") not in (None, args.rows):
        raise SystemExit(f"--resume: {out} is a run of --rows {previous['requested_rows']}")

    def save(final: bool = False) -> None:
        loads = [v["load_avg"] for v in result.get("steps", {}).values()]
        loads += [v["load_avg"] for v in result.get("spark", {}).get("steps", {}).values()]
        result["load_avg_range"] = [min(loads), max(loads)] if loads else [0.0, 0.0]
        result["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 1)
        result["complete"] = final
        out.write_text(json.dumps(result, indent=1))

    cal = calibrate(simulate(benign_reference_config(n_benign=3000, seed=99)).log)
    if args.spark_only:
        spark_only(args, work, cal)
        return
    duck = make_engine("duckdb", memory_limit=args.duckdb_memory)
    steps: dict = {k: v for k, v in previous.get("steps", {}).items() if k == "simulate"}
    path = work / "log.parquet"
    if "spark" in previous:
        result["spark"] = previous["spark"]
        args.no_spark = True
    if steps and not path.exists():
        raise SystemExit(f"--resume: {path} is missing; run without --resume")

    def simulate_main() -> None:
        (_, _, n), steps["simulate"] = timed(lambda: simulate_to_file(scaled_config(args.rows), path,
                                                                      workers=args.workers), 0)
        steps["simulate"].update(rows=n, rows_per_s=round(n / steps["simulate"]["seconds"]))

    spark_rows = args.spark_rows or args.rows
    if not args.no_spark:        # first, so that a long DuckDB run cannot crowd it out
        sp: dict = {"same_log": spark_rows == args.rows, "shuffle_partitions": 4,
                    "driver_memory": args.spark_driver_memory,
                    "why_smaller": args.why_smaller if spark_rows != args.rows else ""}
        spath = path if sp["same_log"] else work / "log_spark.parquet"
        if sp["same_log"]:
            simulate_main()
        else:
            simulate_to_file(scaled_config(spark_rows, seed=2027), spath, workers=args.workers)
        spark, sp["session_start_s"] = start_spark(spath, args.spark_driver_memory)
        ssteps: dict = {}
        info = measure_log(spath, cal, {"duckdb": duck, "spark": spark}, ssteps)
        spark.close()
        sp.update(rows=info["rows"], distinct_prompt_fraction=info["distinct_prompt_fraction"], steps=ssteps)
        sp["ratio_spark_over_duckdb"] = {
            k: round(ssteps[f"{k}_spark"]["seconds"] / ssteps[f"{k}_duckdb"]["seconds"], 2)
            for k in ("feature_sql", "scan")}
        result["spark"] = sp
        save()
    result["steps"] = steps
    if "simulate" not in steps:
        simulate_main()
        save()
    result.update(measure_log(path, cal, {"duckdb": duck}, steps, on_step=save))
    duck.close()
    save(final=True)
    write_section(markdown(result))
    print(json.dumps(result, indent=1))


def start_spark(path: Path, driver_memory: str):
    """A local-mode Spark engine, warmed up (JVM start and first plan) on 1,000 rows of ``path``;
    returns it and the seconds the warm-up took, which no step counts."""
    spark = make_engine("spark", master="local[*]", shuffle_partitions=4, driver_memory=driver_memory)
    warm = prepare(load_log(pq.ParquetFile(path).read_row_group(0).slice(0, 1000))).select(list(SQL_COLUMNS))
    t0 = time.perf_counter()
    spark.run(entity_features_sql(), {"requests": warm})
    seconds = round(time.perf_counter() - t0, 1)
    spark.clear()
    return spark, seconds


def spark_only(args, work: Path, cal) -> None:
    """Spark on the full log of the DuckDB run recorded in ``--out`` (see the module docstring)."""
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.exists() else {}
    if result.get("requested_rows") != args.rows or "scan_duckdb" not in result.get("steps", {}):
        raise SystemExit(f"--spark-only: {out} holds no complete DuckDB run of --rows {args.rows}; run without it first")
    path = work / "log.parquet"
    sp: dict = {"same_log": True, "spark_only": True, "shuffle_partitions": 4,
                "driver_memory": args.spark_driver_memory, "why_smaller": ""}
    kept = result.get("spark", {})
    resume = args.resume and "feature_sql_spark" in kept.get("steps", {}) and path.exists()
    if resume:   # the steps up to Spark's feature SQL are done: only the full scan, in a fresh process
        sp = {**kept, "driver_memory_scan": args.spark_driver_memory}
    if not path.exists():
        (_, _, n), sp["simulate_again"] = timed(lambda: simulate_to_file(scaled_config(args.rows), path,
                                                                          workers=args.workers), 0)

    def save() -> None:
        result["spark"] = sp
        loads = [v["load_avg"] for v in result["steps"].values()] + [v["load_avg"] for v in sp.get("steps", {}).values()]
        result["load_avg_range"] = [min(loads), max(loads)]
        result["spark_peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 1)
        out.write_text(json.dumps(result, indent=1))

    spark, sp["session_start_s"] = start_spark(path, args.spark_driver_memory)
    if resume:
        _, sp["steps"]["scan_spark"] = timed(lambda: scan(load_log(path, columns=SCAN_COLUMNS), cal, spark),
                                             sp["rows"])
    else:
        duck = make_engine("duckdb", memory_limit=args.duckdb_memory)
        sp["steps"] = {}
        info = measure_log(path, cal, {"duckdb": duck, "spark": spark}, sp["steps"], on_step=save,
                           scan_engines=("spark",))
        duck.close()
        sp.update(rows=info["rows"], distinct_prompt_fraction=info["distinct_prompt_fraction"],
                  log_matches=all(info[k] == result.get(k) for k in ("rows", "accounts", "distinct_prompts")))
    spark.close()
    st = sp["steps"]
    sp["ratio_spark_over_duckdb"] = {
        "feature_sql": round(st["feature_sql_spark"]["seconds"] / st["feature_sql_duckdb"]["seconds"], 2),
        "scan": round(st["scan_spark"]["seconds"] / result["steps"]["scan_duckdb"]["seconds"], 2)}
    save()
    write_section(markdown(result))
    print(json.dumps(sp, indent=1))


if __name__ == "__main__":
    main()
