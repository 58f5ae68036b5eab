"""Batch scan: calibrated on benign traffic only, it flags campaigns (hydras included) and no one else."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import numpy as np
import pytest

from distillscope.cli import main
from distillscope.errors import TrafficError
from distillscope.traffic import Calibration, SimulationConfig, calibrate, scan, simulate, write_simulation


@pytest.fixture(scope="module")
def calibration(traffic_calibration):
    return traffic_calibration


@pytest.fixture(scope="module")
def mixed():
    return simulate(SimulationConfig(n_benign=250, n_batch=3, n_eval=2, n_student_groups=1, student_group_size=15,
                                     campaigns=(("single", 1), ("paraphrase", 1), ("hydra", 1), ("hydra-cover", 1)),
                                     days=4, seed=5))


@pytest.fixture(scope="module")
def result(calibration, mixed):
    return scan(mixed.log, calibration)


def test_simulated_labels_are_separate_and_content_is_shared(mixed):
    assert "label_kind" not in mixed.log.column_names and "label_campaign" not in mixed.log.column_names
    labels = mixed.labels.to_pandas()
    assert set(labels.label_kind) == {"benign", "batch", "eval", "student", "distiller"}
    assert labels.account_id.is_unique
    assert set(mixed.log.column("account_id").to_pylist()) <= set(labels.account_id)


def test_scan_flags_every_campaign_and_no_benign_account(result, mixed):
    res = result
    labels = mixed.labels.to_pandas().set_index("account_id")
    flagged = {a.account_id for a in res.flagged_accounts}
    distillers = set(labels.index[labels.label_kind == "distiller"])
    innocent = set(labels.index[labels.label_kind != "distiller"])
    assert not flagged & innocent, labels.loc[sorted(flagged & innocent)]
    seen = {a.account_id for a in res.accounts}
    for strategy in ("single", "paraphrase", "hydra", "hydra-cover"):
        members = set(labels.index[labels.label_strategy == strategy]) & seen
        assert len(members & flagged) >= 0.95 * len(members), strategy
    assert distillers & seen <= flagged | {a.account_id for a in res.accounts if a.n_requests < 2}


def test_flags_carry_evidence_and_campaigns_are_scored(result, mixed):
    res = result
    labels = mixed.labels.to_pandas().set_index("account_id")
    hydra = [c for c in res.flagged_campaigns
             if labels.label_strategy.reindex(list(c.accounts)).eq("hydra").mean() > 0.9]
    assert hydra and len(hydra[0].accounts) >= 20
    c = hydra[0]
    assert c.score > res.campaign_threshold and c.evidence and c.examples
    assert {"ip", "subnet"} & set(c.links)
    a = res.flagged_accounts[0]
    assert a.evidence and all(e.p_value < 0.5 for e in a.evidence) and a.examples
    students = [c for c in res.campaigns if labels.label_kind.reindex(list(c.accounts)).eq("student").all()]
    assert students and not any(s.flagged for s in students)   # clustered, but not flagged


def test_calibration_round_trip_and_bad_file(calibration, tmp_path):
    path = calibration.save(tmp_path / "cal.json")
    again = Calibration.load(path)
    assert again.account_threshold == calibration.account_threshold and again.config == calibration.config
    assert again.p_values(np.array([again.account_threshold]))[0] <= again.config.alpha * (1 + 1e-9)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(TrafficError, match="schema version None"):
        Calibration.load(tmp_path / "bad.json")
    old = json.loads(path.read_text())
    old["version"] = 2                     # a calibration of the former, stratified scorer
    (tmp_path / "v2.json").write_text(json.dumps(old))
    with pytest.raises(TrafficError, match="schema version 2, this distillscope reads version 3 only"):
        Calibration.load(tmp_path / "v2.json")


def test_too_small_reference_is_refused():
    tiny = simulate(SimulationConfig(n_benign=5, n_batch=0, n_eval=0, n_student_groups=0, campaigns=(), seed=1))
    with pytest.raises(TrafficError, match="benign reference has only"):
        calibrate(tiny.log)


def test_cli_simulate_calibrate_scan(tmp_path, calibration, capsys):
    log = tmp_path / "log.jsonl"
    assert main(["traffic", "simulate", str(log), "--benign", "60", "--batch", "1", "--eval", "1",
                 "--student-groups", "0", "--campaign", "hydra:1", "--days", "2", "--seed", "3"]) == 0
    assert (tmp_path / "log.labels.parquet").is_file()
    cal = calibration.save(tmp_path / "cal.json")
    out_json, out_pq = tmp_path / "scan.json", tmp_path / "scan.parquet"
    assert main(["traffic", "scan", str(log), "-c", str(cal), "--json", str(out_json), "--parquet", str(out_pq),
                 "--top", "5"]) == 0
    body = json.loads(out_json.read_text())
    assert body["flagged_campaigns"] >= 1 and body["flagged_accounts"] >= 10
    assert body["campaigns"][0]["evidence"] and body["accounts"][0]["examples"]
    table = pq.read_table(out_pq)
    assert {"account_id", "score", "flagged", "cot_share"} <= set(table.column_names)
    capsys.readouterr()
    assert main(["traffic", "scan", str(tmp_path / "missing.parquet"), "-c", str(cal)]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err
    assert main(["traffic", "simulate", str(log), "--campaign", "nosuch:1"]) == 2
    assert "unknown campaign strategy" in capsys.readouterr().err


def test_scan_writes_parquet_export_of_simulation(tmp_path, calibration):
    sim = simulate(SimulationConfig(n_benign=40, n_batch=1, n_eval=0, n_student_groups=0, campaigns=(), seed=8))
    path, _ = write_simulation(sim, tmp_path / "benign.parquet")
    res = scan(path, calibration)
    assert not res.flagged_accounts and not res.flagged_campaigns


def test_cli_simulate_parquet_streams_the_same_rows(tmp_path):
    from distillscope.traffic import SimulationConfig, simulate

    log = tmp_path / "log.parquet"
    assert main(["traffic", "simulate", str(log), "--benign", "30", "--batch", "1", "--eval", "1",
                 "--student-groups", "0", "--campaign", "single:1", "--days", "1", "--seed", "5",
                 "--workers", "2"]) == 0
    assert (tmp_path / "log.labels.parquet").is_file()
    sim = simulate(SimulationConfig(n_benign=30, n_batch=1, n_eval=1, n_student_groups=0,
                                    campaigns=(("single", 1),), days=1.0, seed=5))
    streamed = pq.read_table(log)
    assert streamed.num_rows == sim.log.num_rows > 0
    assert streamed.column("request_id").to_pylist() == sim.log.column("request_id").to_pylist()
    assert streamed.column("account_id").to_pylist() == sim.log.column("account_id").to_pylist()


def test_the_gateway_export_end_user_column_is_the_user_field():
    import pyarrow as pa

    from distillscope.traffic import load_log

    raw = pa.table({"request_id": ["a", "b"], "ts": ["2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z"],
                    "account_id": ["x", "x"], "end_user": ["u1", None]})
    log = load_log(raw)
    table = getattr(log, "table", log)
    assert table.column("user").to_pylist() == ["u1", None]
