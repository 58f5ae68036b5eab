"""``distillscope traffic``: simulate, calibrate, compute features and scan request logs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from distillscope.cli.common import RichProgress, console, print_table, state

traffic_app = typer.Typer(help="Traffic forensics: find distillation accounts and campaigns in request logs.",
                          no_args_is_help=True)

ENGINE_HELP = "Feature engine: duckdb (embedded) or spark (PySpark; local[*] unless a cluster session exists)."
MAP_HELP = "Map a foreign log column onto a canonical one: THEIR_COLUMN=CANONICAL (repeatable; docs/traffic.md)."


def _campaigns(specs: list[str]) -> tuple[tuple[str, int], ...]:
    from distillscope.errors import TrafficError

    out = []
    for spec in specs:
        name, _, count = spec.partition(":")
        try:
            out.append((name, int(count or 1)))
        except ValueError as exc:
            raise TrafficError(f"campaign spec {spec!r} is not STRATEGY[:COUNT]", hint="e.g. --campaign hydra:2") from exc
    return tuple(out)


@traffic_app.command("simulate")
def simulate_cmd(
    ctx: typer.Context,
    out: Path = typer.Argument(..., help="Log to write (.parquet or .jsonl); labels go to <name>.labels.parquet."),
    benign: int = typer.Option(1000, "--benign", help="Ordinary users."),
    batch: int = typer.Option(10, "--batch", help="Heavy templated batch jobs (hard negatives)."),
    evals: int = typer.Option(5, "--eval", help="Evaluation harnesses (hard negatives)."),
    students: int = typer.Option(2, "--student-groups", help="Groups of 25 students behind one campus IP."),
    campaign: List[str] = typer.Option(["single:1", "paraphrase:1", "hydra:1", "hydra-cover:1"], "--campaign",
                                       help="STRATEGY[:COUNT]; strategies: single, paraphrase, hydra, hydra-cover."),
    days: float = typer.Option(7.0, "--days", help="Length of the simulated window."),
    seed: int = typer.Option(0, "--seed", help="Random seed (everything is reproducible from it)."),
    gateway: Optional[str] = typer.Option(None, "--gateway", help="Also replay the log against this gateway URL."),
    keys: Optional[Path] = typer.Option(None, "--keys", help="JSON {account_id: api_key} for --gateway."),
    workers: int = typer.Option(1, "--workers", min=1,
                                help="Processes simulating clients when streaming a .parquet log (no --gateway)."),
) -> None:
    """Simulate a labelled request log (benign users, hard negatives, distillation campaigns).

    A .parquet log without --gateway is streamed to disk in bounded memory (any size, e.g. 10M rows);
    the rows are the same as the in-memory simulation's."""
    from distillscope.errors import TrafficError
    from distillscope.traffic import SimulationConfig, replay, simulate, write_simulation
    from distillscope.traffic.simulate import simulate_to_file

    state(ctx)
    cfg = SimulationConfig(n_benign=benign, n_batch=batch, n_eval=evals, n_student_groups=students,
                           campaigns=_campaigns(campaign), days=days, seed=seed)
    if gateway is None and out.suffix.lower() in (".parquet", ".pq"):
        log_path, labels, rows = simulate_to_file(cfg, out, workers=workers, progress=RichProgress())
        console.print(f"wrote {rows} requests to {log_path} (labels: {labels})")
        return
    sim = simulate(cfg, progress=RichProgress())
    log_path, labels = write_simulation(sim, out)
    console.print(f"wrote {sim.log.num_rows} requests from {sim.labels.num_rows} accounts to {log_path} "
                  f"(labels: {labels})")
    if gateway:
        import httpx

        if keys is None or not keys.is_file():
            raise TrafficError("--gateway needs --keys FILE mapping account ids to API keys",
                               hint='e.g. {"acct-000001": "ds-..."}')
        with httpx.Client(base_url=gateway.rstrip("/").removesuffix("/v1"), timeout=60) as client:
            summary = replay(sim.log, client, json.loads(keys.read_text()), progress=RichProgress())
        console.print(f"replayed {summary.sent} requests: {summary.accepted} accepted, refused {summary.refused}")


@traffic_app.command("calibrate")
def calibrate_cmd(
    ctx: typer.Context,
    log: str = typer.Argument(..., help="A log of known-benign traffic (Parquet/JSONL/CSV or database URL)."),
    out: Path = typer.Option(..., "--out", "-o", help="Calibration JSON to write."),
    engine: str = typer.Option("duckdb", "--engine", help=ENGINE_HELP),
    mapping: List[str] = typer.Option([], "--map", help=MAP_HELP),
    alpha: float = typer.Option(0.001, "--alpha", help="Target benign false-positive rate per account (conformal p-value threshold)."),
) -> None:
    """Set thresholds from benign traffic only (never from the log you scan)."""
    from distillscope.traffic import ScanConfig, ScoringConfig, calibrate, parse_mapping

    state(ctx)
    cal = calibrate(log, engine, ScanConfig(scoring=ScoringConfig(alpha=alpha)), mapping=parse_mapping(mapping),
                    progress=RichProgress())
    cal.save(out)
    console.print(f"calibrated on {cal.n_reference} benign accounts: account threshold {cal.account_threshold:.2f}, "
                  f"campaign threshold {cal.campaign_threshold:.2f} -> {out}")


@traffic_app.command("features")
def features_cmd(
    ctx: typer.Context,
    log: str = typer.Argument(..., help="Request log (Parquet/JSONL/CSV or database URL)."),
    out: Path = typer.Option(..., "--out", "-o", help="Parquet file for the per-account feature table."),
    engine: str = typer.Option("duckdb", "--engine", help=ENGINE_HELP),
    mapping: List[str] = typer.Option([], "--map", help=MAP_HELP),
) -> None:
    """Compute the per-account feature table (no scoring)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from distillscope.traffic import analyse, parse_mapping

    state(ctx)
    a = analyse(log, engine, mapping=parse_mapping(mapping), progress=RichProgress())
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(a.account_features, preserve_index=False), out)
    for note in a.report.notes():
        console.print(f"  note: {note}")
    console.print(f"wrote features of {len(a.account_features)} accounts to {out}")


@traffic_app.command("scan")
def scan_cmd(
    ctx: typer.Context,
    log: str = typer.Argument(..., help="Request log (Parquet/JSONL/CSV export or database URL)."),
    engine: str = typer.Option("duckdb", "--engine", help=ENGINE_HELP),
    calibration: Optional[Path] = typer.Option(None, "--calibration", "-c",
                                               help="Calibration JSON (traffic calibrate); default: the simulated "
                                                    "benign reference, cached in HOME/traffic."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the full result (with evidence) as JSON."),
    parquet_out: Optional[Path] = typer.Option(None, "--parquet", help="Write ranked accounts as Parquet."),
    top: int = typer.Option(20, "--top", help="Rows in the terminal tables."),
    mapping: List[str] = typer.Option([], "--map", help=MAP_HELP),
) -> None:
    """Rank accounts and campaigns by distillation evidence."""
    from distillscope.traffic import Calibration, default_calibration, parse_mapping, result_to_dict, scan

    settings = state(ctx).settings()
    progress = RichProgress()
    cal = Calibration.load(calibration) if calibration else default_calibration(settings, progress=progress)
    res = scan(log, cal, engine, mapping=parse_mapping(mapping), progress=progress)
    for note in res.report.notes():
        console.print(f"  note: {note}")
    if res.unavailable:
        console.print("  note: cannot run on this log: " + "; ".join(f"{k} ({v})" for k, v in res.unavailable.items()))
    flagged_cohorts = [c for c in res.cohorts if c.flagged]
    if flagged_cohorts:
        print_table("behaviour cohorts (no shared infrastructure)", ("cohort", "accounts", "fingerprint", "p", "coverage"),
                    [(c.cluster_id, len(c.accounts), c.fingerprint, f"{c.p_value:.2g}", f"{c.coverage_gain:.1f}")
                     for c in flagged_cohorts[:top]])
    print_table(f"campaigns (threshold {res.campaign_threshold:.1f})",
                ("campaign", "accounts", "requests", "score", "flagged", "linked by", "top evidence"),
                [(c.campaign_id, len(c.accounts), c.n_requests, f"{c.score:.1f}", "FLAG" if c.flagged else "",
                  ", ".join(f"{k}:{v}" for k, v in c.links.items()),
                  ", ".join(e.feature for e in c.evidence[:3])) for c in res.campaigns[:top]])
    print_table(f"accounts (threshold {res.account_threshold:.1f}; {len(res.flagged_accounts)} of "
                f"{len(res.accounts)} flagged)", ("account", "requests", "score", "p", "flag", "campaign", "top evidence"),
                [(a.account_id, a.n_requests, f"{a.score:.1f}", f"{a.p_value:.2g}", a.reason.upper(), a.campaign_id or "",
                  ", ".join(f"{e.feature}={e.value:.3g}" for e in a.evidence[:3])) for a in res.accounts[:top]])
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result_to_dict(res, top=top), indent=1, default=str))
        console.print(f"wrote {json_out}")
    if parquet_out:
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = pd.DataFrame([{"account_id": a.account_id, "n_requests": a.n_requests, "score": a.score,
                              "p_value": a.p_value, "flagged": a.flagged, "reason": a.reason,
                              "campaign_id": a.campaign_id,
                              "evidence": json.dumps([e.__dict__ for e in a.evidence])} for a in res.accounts])
        merged = rows.merge(res.account_features, on=["account_id", "n_requests"], how="left")
        parquet_out.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pandas(merged, preserve_index=False), parquet_out)
        console.print(f"wrote {parquet_out}")


def register(app: typer.Typer) -> None:
    app.add_typer(traffic_app, name="traffic")
