"""The independent labelled traffic log (bench/traffic/independent): deterministic per seed,
labels consistent with the rows, and readable by ``distillscope traffic calibrate/scan``."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distillscope.cli import main
from distillscope.traffic import LOG_COLUMNS, load_log

GEN_DIR = Path(__file__).resolve().parents[1] / "bench" / "traffic" / "independent"
SMALL = dict(days=2, benign_accounts=80, campaign_scale=0.05)
STRATEGIES = {"slow_low", "router", "diverse_hydra", "logprob_harvest", "cot_extraction", "synthetic_dataset",
              "benign_mimic", "mixture"}


def _generator():
    sys.path.insert(0, str(GEN_DIR))
    spec = importlib.util.spec_from_file_location("independent_generate", GEN_DIR / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    gen = _generator()
    root = tmp_path_factory.mktemp("independent")
    out = {}
    for name, seed, benign_only in (("a", 11, False), ("a2", 11, False), ("b", 12, False), ("benign", 13, True)):
        gen.generate(root / name, seed=seed, benign_only=benign_only, **SMALL)
        out[name] = root / name
    return out


def _read(d: Path):
    log = pq.read_table(d / "log.parquet")
    rows = pq.read_table(d / "row_labels.parquet")
    labels = json.loads((d / "labels.json").read_text())
    return log, rows, labels


def test_same_seed_same_log_and_labels(logs):
    log_a, rows_a, lab_a = _read(logs["a"])
    log_b, rows_b, lab_b = _read(logs["a2"])
    assert log_a.equals(log_b)
    assert rows_a.equals(rows_b)
    assert lab_a == lab_b


def test_other_seed_similar_statistics_different_text(logs):
    log_a, _, lab_a = _read(logs["a"])
    log_b, _, lab_b = _read(logs["b"])
    assert set(lab_a["summary"]["accounts_by_kind"]) == set(lab_b["summary"]["accounts_by_kind"])
    ratio = log_a.num_rows / log_b.num_rows
    assert 0.6 < ratio < 1.6
    pa_ = set(log_a.column("prompt").drop_null().to_pylist())
    pb = set(log_b.column("prompt").drop_null().to_pylist())
    overlap = len(pa_ & pb) / min(len(pa_), len(pb))
    assert overlap < 0.05, f"{overlap:.1%} of prompts repeat across seeds"


def _reasoning_openings(seed: int, draw: int) -> set[str]:
    import random

    from world import World, topic_values

    world, rng = World(seed=seed, days=1), random.Random(draw)
    return {" ".join(world.grammar.say("reason_full", rng, topic_values(rng), (world.dialect,)).split()[:3]).lower()
            for _ in range(4000)}


def test_each_seed_has_its_own_phrasings():
    """The seed's dialect keeps ~75% of the alternatives at each choice point: the ways a
    reasoning request opens differ far more between seeds than between two draws of one seed."""
    _generator()
    a, a_again, b = _reasoning_openings(1, 0), _reasoning_openings(1, 1), _reasoning_openings(2, 0)
    assert len(a) > 80 and len(b) > 80
    assert len(a ^ b) > 10 * max(len(a ^ a_again), 3)
    assert a - b and b - a


def test_labels_consistent_with_rows(logs):
    log, rows, labels = _read(logs["a"])
    accounts = labels["accounts"]
    assert log.column("request_id").to_pylist() == rows.column("request_id").to_pylist()
    ids = set(log.column("account_id").drop_null().to_pylist())
    assert ids == set(accounts)
    strategies = {a["strategy"] for a in accounts.values() if a["label"] == "distiller"}
    assert strategies == STRATEGIES
    for cid, camp in labels["campaigns"].items():
        assert camp["accounts"], cid
        for acct in camp["accounts"]:
            assert accounts[acct]["campaign"] == cid and accounts[acct]["strategy"] == camp["strategy"]
    r = rows.to_pandas()
    r["acct_label"] = r["account_id"].map(lambda a: accounts[a]["label"] if a in accounts else None)
    # A benign account never has a distiller row; a distiller account (not a router) has only distiller rows.
    assert not ((r.acct_label == "benign") & (r.label == "distiller")).any()
    routers = {a for a, v in accounts.items() if v.get("strategy") == "router"}
    plain = r[(r.acct_label == "distiller") & ~r.account_id.isin(routers)]
    assert (plain.label == "distiller").all()
    # Routers: a minority of distiller rows; every end user that appears is labelled, with the rows' label.
    assert len(routers) == 3
    for acct in routers:
        mine = r[r.account_id == acct]
        share = (mine.label == "distiller").mean()
        assert 0.05 < share < 0.4, share
        end_users = labels["end_users"][acct]
        for user, label in mine.dropna(subset=["user"])[["user", "label"]].itertuples(index=False):
            assert end_users[user]["label"] == label


def test_benign_only_log_has_no_distillers(logs):
    _, rows, labels = _read(logs["benign"])
    assert {a["label"] for a in labels["accounts"].values()} == {"benign"}
    assert set(rows.column("label").to_pylist()) == {"benign"}
    assert labels["campaigns"] == {}


def test_completion_lengths_respect_max_tokens(logs):
    log, _, _ = _read(logs["a"])
    df = log.to_pandas()
    ok = df[df.status == 200]
    n = ok.params.map(lambda p: json.loads(p).get("n", 1))
    capped = ok.max_tokens.notna()
    assert (ok.completion_tokens[capped] <= ok.max_tokens[capped] * n[capped]).all()
    single = capped & (n == 1)
    cut = ok[single & (ok.finish_reason == "length")]
    assert len(cut) > 0 and (cut.completion_tokens == cut.max_tokens).all()
    stopped = ok[single & (ok.finish_reason == "stop")]
    assert (stopped.completion_tokens <= stopped.max_tokens).all()
    rejected = df[df.status != 200]
    assert len(rejected) > 0 and rejected.completion.isna().all() and (rejected.completion_tokens == 0).all()
    assert df.account_id.isna().any()           # failed authentication rows


def test_schema_is_the_request_log_export(logs):
    log, _, _ = _read(logs["a"])
    for name, typ in LOG_COLUMNS.items():
        assert log.schema.field(name).type == typ, name
    assert log.schema.field("user").type == pa.string()
    table = load_log(logs["a"] / "log.parquet")
    assert table.report.missing_columns == ()
    assert table.report.n_duplicate_ids == 0 and table.report.n_bad_ts == 0


def test_traffic_scan_reads_the_log(logs, tmp_path):
    cal = tmp_path / "cal.json"
    out = tmp_path / "scan.json"
    assert main(["traffic", "calibrate", str(logs["benign"] / "log.parquet"), "-o", str(cal)]) == 0
    assert main(["traffic", "scan", str(logs["a"] / "log.parquet"), "-c", str(cal), "--json", str(out), "--top", "3"]) == 0
    result = json.loads(out.read_text())
    labels = json.loads((logs["a"] / "labels.json").read_text())
    scanned = {a["account_id"] for a in result["accounts"]}
    assert scanned and scanned <= set(labels["accounts"])


def test_deterministic_across_processes(tmp_path):
    """Same seed, separate interpreters with different string-hash salts: byte-identical files."""
    import hashlib
    import os
    import subprocess

    digests = []
    for salt in ("1", "2"):
        out = tmp_path / f"run{salt}"
        env = {**os.environ, "PYTHONHASHSEED": salt}
        subprocess.run([sys.executable, str(GEN_DIR / "generate.py"), "--out", str(out), "--seed", "7",
                        "--days", "1", "--benign-accounts", "60", "--campaign-scale", "0.05"],
                       check=True, env=env, capture_output=True)
        digests.append({f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in out.iterdir()})
    assert digests[0] == digests[1] and len(digests[0]) == 3
