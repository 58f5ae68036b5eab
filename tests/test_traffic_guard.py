"""The real-time guard: revokes a simulated campaign, leaves benign and hard-negative accounts alone."""

from __future__ import annotations

import uuid

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from distillscope.errors import TrafficError
from distillscope.traffic import GuardPolicy, SimulationConfig, TrafficGuard, simulate
from distillscope.traffic.guard import Rung
from distillscope.traffic.guard_state import MemoryGuardState, RedisGuardState


@pytest.fixture(scope="module")
def calibration(traffic_calibration):
    return traffic_calibration


@pytest.fixture(scope="module")
def traffic():
    return simulate(SimulationConfig(n_benign=150, n_batch=2, n_eval=1, n_student_groups=1, student_group_size=15,
                                     campaigns=(("hydra", 1), ("hydra-cover", 1)), days=3, seed=13))


def _run(guard, log: pa.Table):
    actions = []
    for row in log.to_pylist():
        actions += [(row["request_id"], a) for a in guard.observe(row)]
    return actions


def _subset(sim, n_hydra: int, n_other: int) -> tuple[pa.Table, set[str], set[str]]:
    labels = sim.labels.to_pandas()
    hydra = sorted(labels.account_id[labels.label_strategy == "hydra"])[:n_hydra]
    other = sorted(labels.account_id[labels.label_kind != "distiller"])[:n_other]
    log = sim.log.filter(pc.is_in(sim.log.column("account_id"), pa.array(hydra + other)))
    return log, set(hydra), set(other)


@pytest.mark.slow
def test_guard_revokes_campaigns_and_spares_innocents(calibration, traffic):
    guard = TrafficGuard(calibration)
    actions = _run(guard, traffic.log)
    labels = traffic.labels.to_pandas().set_index("account_id")
    targets = {a.target_id for _, a in actions}
    innocent = set(labels.index[labels.label_kind != "distiller"])
    assert not targets & innocent, labels.loc[sorted(targets & innocent)]
    revoked = {a.target_id for _, a in actions if a.state.value == "revoked"}
    active = set(traffic.log.column("account_id").to_pylist())
    for strategy in ("hydra", "hydra-cover"):
        members = set(labels.index[labels.label_strategy == strategy]) & active
        assert len(members & revoked) >= 0.95 * len(members), strategy
    cluster = [a for _, a in actions if a.evidence["scope"] == "cluster"]
    assert cluster and cluster[0].evidence["n_accounts"] >= 3 and cluster[0].evidence["features"]
    assert all(a.reason and a.actor == "traffic-guard" for _, a in actions)


def test_escalation_is_stepwise_and_never_repeats(calibration, traffic):
    guard = TrafficGuard(calibration)
    log, hydra, _ = _subset(traffic, 20, 0)
    actions = _run(guard, log)
    order = {"throttled": 1, "suspended": 2, "revoked": 3}
    per_account: dict[str, list[int]] = {}
    for _, a in actions:
        per_account.setdefault(a.target_id, []).append(order[a.state.value])
    assert per_account and all(levels == sorted(set(levels)) for levels in per_account.values())
    assert any(e.level == "flag" for e in guard.events)


def test_missing_fields_and_unauthenticated_rows_raise_nothing(calibration):
    guard = TrafficGuard(calibration)
    assert guard.observe({"request_id": "r1", "ts": 1_770_000_000.0, "account_id": None}) == ()
    for i in range(30):   # a bare account: only ids and times, no prompts, tokens or IPs
        assert guard.observe({"request_id": f"x{i}", "ts": 1_770_000_000.0 + i * 60, "account_id": "bare"}) == []
    assert not guard.events


def test_policy_validation():
    with pytest.raises(TrafficError, match="unknown"):
        GuardPolicy(account=(Rung("banish", 1.0, 5),))
    with pytest.raises(TrafficError, match="factor"):
        GuardPolicy(cluster=(Rung("revoked", 0.0, 5),))


def test_memory_state_semantics():
    s = MemoryGuardState()
    s.add("a", {"n": 1, "x": 2.5}, {"ips": "1.2.3.4"})
    s.add("a", {"n": 1}, {"ips": "1.2.3.4"})
    assert s.totals("a") == {"n": 2.0, "x": 2.5} and s.set_size("a", "ips") == 1
    assert s.join_key("ip:1", "a", cap=2) == [] and s.join_key("ip:1", "b", cap=2) == ["a"]
    assert s.join_key("ip:1", "b", cap=2) is None and s.join_key("ip:1", "c", cap=2) is None   # over the cap
    assert s.bump_pair("b", "a", "ip") == 1 and s.pair("a", "b", "ip") == 1
    assert s.union("b", "c") == "b" and s.union("a", "c") == "a" and s.members(s.find("c")) == ["a", "b", "c"]
    assert s.raise_level("a", 2) and not s.raise_level("a", 1) and s.raise_level("a", 3)


@pytest.mark.redis
def test_redis_state_shared_by_workers_matches_memory(calibration, traffic, redis_url):
    prefix = f"test-traffic-{uuid.uuid4().hex[:8]}:"
    worker1, worker2 = RedisGuardState(redis_url, prefix), RedisGuardState(redis_url, prefix)
    try:
        worker1.add("a", {"n": 1}, {"ips": "1.1.1.1"})
        worker2.add("a", {"n": 2}, {"ips": "2.2.2.2"})
        assert worker1.totals("a") == {"n": 3.0} and worker2.union_size(["a"], "ips") == 2
        assert worker1.join_key("k", "a", 5) == [] and worker2.join_key("k", "b", 5) == ["a"]
        assert worker1.union("b", "a") == "a" and worker2.members("a") == ["a", "b"]
        assert worker1.raise_level("a", 2) and not worker2.raise_level("a", 2)
        log, _, _ = _subset(traffic, 12, 15)
        rows = log.to_pylist()
        mem = TrafficGuard(calibration)
        shared = [TrafficGuard(calibration, state=RedisGuardState(redis_url, prefix + "g:")) for _ in range(2)]
        got_mem, got_redis = [], []
        for i, row in enumerate(rows):   # two workers alternate over one request stream
            got_mem += [(a.target_id, a.state.value) for a in mem.observe(row)]
            got_redis += [(a.target_id, a.state.value) for a in shared[i % 2].observe(row)]
        assert got_redis == got_mem and any(s == "revoked" for _, s in got_mem)
    finally:
        worker1.clear()


@pytest.mark.slow
def test_guard_inside_the_gateway_revokes_and_audits(calibration, traffic, tmp_path):
    from fastapi.testclient import TestClient

    from distillscope.gateway import GatewayConfig, Limits, StubBackend, create_app
    from distillscope.settings import load_settings
    from distillscope.traffic import replay
    from distillscope.traffic.replay import ReplayedGuard

    log, hydra, other = _subset(traffic, 12, 15)
    guard = ReplayedGuard(TrafficGuard(calibration))
    app = create_app(load_settings(home=tmp_path), backend=StubBackend(), guards=(guard,),
                     config=GatewayConfig(max_tokens_cap=32, default_max_tokens=8))
    with TestClient(app) as client:
        store = app.state.gateway.store
        keys, gw_id = {}, {}
        for sim_id in sorted(hydra | other):
            info = store.create_account(sim_id, limits=Limits(rpm=None, tpm=None, max_concurrent=None))
            keys[sim_id], _ = store.create_key(info.account_id)
            gw_id[sim_id] = info.account_id
        summary = replay(log, client, keys, model="stub-echo", on_request=guard.expect)
        audit = [e for e in store.audit_log(limit=5000) if e.actor == "traffic-guard"]
        revoked = {e.target_id for e in audit if e.new_state is not None and e.new_state.value == "revoked"}
        assert revoked and revoked <= {gw_id[h] for h in hydra}
        assert not {e.target_id for e in audit} & {gw_id[o] for o in other}
        assert all(e.evidence.get("features") and e.reason for e in audit)
        assert summary.refused.get(403, 0) > 0           # revoked mid-run: later requests refused
        victim = sorted(revoked)[0]
        sim_victim = next(s for s, g in gw_id.items() if g == victim)
        resp = client.post("/v1/chat/completions", json={"model": "stub-echo", "messages": [
            {"role": "user", "content": "hi"}]}, headers={"Authorization": f"Bearer {keys[sim_victim]}"})
        assert resp.status_code == 403


def test_guard_and_scan_agree_on_the_same_log(calibration, traffic):
    """Same features, same scorer, same calibration: the guard's running score of every account after
    the last request equals the batch scan's score of that account."""
    from distillscope.traffic import scan

    log, hydra, other = _subset(traffic, 6, 25)
    guard = TrafficGuard(calibration)
    _run(guard, log)
    result = scan(log, calibration)
    assert result.accounts
    for a in result.accounts:
        score, p = guard.account_score(a.account_id)
        assert score == pytest.approx(a.score, rel=1e-6, abs=1e-6), a.account_id
        assert p == pytest.approx(a.p_value, rel=1e-6)
    flagged = {a.account_id for a in result.flagged_accounts if a.reason == "account"}
    assert flagged and flagged <= hydra
