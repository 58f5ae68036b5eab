"""Demo act: benign users and a hydra campaign hit the gateway; the traffic guard stops the hydra.

Fast path (stated in the act's notes): a second in-process gateway with the stub backend (instant
replies, SQLite in the demo's working directory) and the :class:`TrafficGuard` installed as a
request guard; a simulated population (benign users, a batch job, an evaluation harness, students
behind one campus IP, and a hydra of proxy accounts) is replayed through its HTTP API one request
at a time. The week of simulated traffic is replayed in seconds, so :class:`ReplayedGuard` hands
the guard each request's simulated arrival time, client IP and token counts. The guard is
calibrated on a simulated benign reference only. Shows the enforcement timeline and the
campaign's evidence from the audit table.
"""

from __future__ import annotations

import logging
from typing import Any

import pyarrow.compute as pc

from distillscope.demo import ActResult, DemoContext

logger = logging.getLogger(__name__)


def _population(ctx: DemoContext) -> Any:
    from distillscope.traffic import SimulationConfig, simulate

    n_benign, n_hydra = (30, 12) if ctx.quick else (90, 30)
    sim = simulate(SimulationConfig(n_benign=n_benign, n_batch=1, n_eval=1, n_student_groups=1, student_group_size=12,
                                    campaigns=(("hydra", 1),), days=3, seed=7), progress=ctx.progress)
    labels = sim.labels.to_pandas()
    hydra = sorted(labels.loc[labels.label_kind == "distiller", "account_id"])[:n_hydra]
    keep = list(labels.loc[labels.label_kind != "distiller", "account_id"]) + hydra
    log = sim.log.filter(pc.is_in(sim.log.column("account_id"), __import__("pyarrow").array(keep)))
    if ctx.quick:  # the batch job alone would dominate a quick run
        log = log.slice(0, min(log.num_rows, 1500))
    return log, labels[labels.account_id.isin(keep)].set_index("account_id")


def act(ctx: DemoContext) -> ActResult:
    from fastapi.testclient import TestClient

    from distillscope.gateway import GatewayConfig, Limits, StubBackend, create_app
    from distillscope.settings import load_settings
    from distillscope.traffic import TrafficGuard, default_calibration, replay
    from distillscope.traffic.replay import ReplayedGuard

    cal = default_calibration(ctx.settings, n_benign=200 if ctx.quick else 800, progress=ctx.progress)
    guard = TrafficGuard(cal)
    replayed = ReplayedGuard(guard)
    log, labels = _population(ctx)
    db = ctx.workdir / "traffic-demo.sqlite"
    for leftover in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        leftover.unlink(missing_ok=True)   # the act's own database, fresh on every run
    settings = load_settings(home=ctx.settings.home, database_url=f"sqlite:///{db}")
    app = create_app(settings, backend=StubBackend(), guards=(replayed,), config=GatewayConfig(max_tokens_cap=64, default_max_tokens=16))
    with TestClient(app) as client:
        store = app.state.gateway.store
        keys, sim_of = {}, {}
        for sim_id in labels.index:
            info = store.create_account(sim_id, limits=Limits(rpm=None, tpm=None, max_concurrent=None), actor="demo")
            keys[sim_id], _ = store.create_key(info.account_id, actor="demo")
            sim_of[info.account_id] = sim_id
        summary = replay(log, client, keys, model="stub-echo", on_request=replayed.expect, progress=ctx.progress)
        audit = [e for e in store.audit_log(limit=10_000) if e.actor == guard.policy.actor]
    return _result(guard, audit, labels, sim_of, summary, log.num_rows)


def _result(guard: Any, audit: list, labels: Any, sim_of: dict, summary: Any, n_rows: int) -> ActResult:
    kind = {a: (labels.label_strategy[s] if isinstance(labels.label_strategy[s], str) else labels.label_kind[s])
            for a, s in sim_of.items()}
    rows: list[list[Any]] = []
    for e in sorted(audit, key=lambda e: (e.ts, e.id)):   # one row per guard decision, accounts counted
        ev = e.evidence or {}
        state = e.new_state.value if e.new_state else ""
        key = (ev.get("scope", ""), state, f"{ev.get('score', 0):.1f}", ev.get("n_requests", ""))
        if rows and tuple(rows[-1][2:6]) == key:
            rows[-1][0] += 1
            rows[-1][1].add(kind.get(e.target_id, "?"))
            continue
        rows.append([1, {kind.get(e.target_id, "?")}, *key, e.reason[:70]])
    table = [(n, ",".join(sorted(k)), *rest) for n, k, *rest in rows]
    revoked = {e.target_id for e in audit if e.new_state is not None and e.new_state.value == "revoked"}
    hydra = {a for a, k in kind.items() if k == "hydra"}
    innocent = {e.target_id for e in audit} - hydra
    cluster_ev = next((e.evidence for e in audit if (e.evidence or {}).get("scope") == "cluster"), None)  # newest
    notes = [f"replayed {summary.sent} of {n_rows} simulated requests through an in-process gateway with the stub "
             f"backend (fast path); {summary.accepted} served, refused {summary.refused}",
             f"hydra accounts revoked: {len(revoked & hydra)} of {len(hydra)}; benign / hard-negative accounts "
             f"actioned: {len(innocent)}",
             f"guard thresholds (benign reference only): account {guard.threshold_:.1f}, cluster "
             f"{guard.cluster_threshold_:.1f}"]
    if cluster_ev:
        feats = ", ".join(f"{f['feature']}={f['value']:.3g} (benign median {f['benign_median']:.3g})"
                          for f in cluster_ev.get("features", [])[:4])
        notes.append(f"campaign evidence: {cluster_ev.get('n_accounts')} linked accounts, pooled score "
                     f"{cluster_ev.get('score')} over {cluster_ev.get('n_requests')} requests; {feats}")
    return ActResult("3. Traffic guard: a hydra campaign is stopped mid-run (timeline from the audit table)",
                     ("accounts", "truth", "scope", "state", "score", "requests", "reason"),
                     tuple(table[:15]), tuple(notes))
