"""The audit benchmark (bench/audit): its helpers and a smoke run of the whole pipeline."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

BENCH = Path(__file__).resolve().parents[1] / "bench" / "audit"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("bench_audit_run", BENCH / "run.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.path.remove(str(BENCH))


def test_first_crossing_matches_the_exact_binomial_tail(bench):
    rng = np.random.default_rng(0)
    bits = (rng.random(3000) < 0.4).astype(np.int64)
    ends = list(range(10, 3001, 10))
    i = bench.first_crossing(bits, ends, 0.25)
    assert i is not None
    k = int(bits[:ends[i]].sum())
    assert stats.binom.sf(k - 1, ends[i], 0.25) < bench.P_TARGET
    k_prev = int(bits[:ends[i - 1]].sum())
    assert stats.binom.sf(k_prev - 1, ends[i - 1], 0.25) >= bench.P_TARGET
    assert bench.first_crossing(np.zeros(100, dtype=np.int64), [50, 100], 0.25) is None


def test_kl_extrapolation(bench):
    assert bench.kl_extrapolation(None, 0.25) is None
    assert bench.kl_extrapolation(0.2, 0.25) is None
    n = bench.kl_extrapolation(0.5, 0.25)
    assert 50 < n < 200  # log(1e5) / KL(0.5 || 0.25) ≈ 80


def test_green_matrix_agrees_with_the_detector(bench):
    import torch

    lm = sys.modules["lm"]
    from distillscope.watermark import make_scheme
    scheme = make_scheme("kgw", bench.bench_key("test"), gamma=0.25, delta=2.0, context_width=1)
    vocab = lm.Vocab(torch.tensor([0, 17, 250, 4096, 30000, 49151]))
    green = lm.green_matrix(scheme, vocab)
    det = scheme.detector()
    for w in range(vocab.size):
        for y in range(vocab.size):
            d = det.score_pairs([((int(vocab.real[w]),), int(vocab.real[y]))])
            assert bool(green[w, y]) == (d.score == 1)


@pytest.mark.slow
def test_smoke_preset_runs_end_to_end(bench, tmp_path):
    out = tmp_path / "audit.json"
    log = bench.main(["--preset", "smoke", "--out", str(out), "--work", str(tmp_path / "work"),
                      "--set", "bb_temperatures=[1.0, 0.5]"])
    saved = json.loads(out.read_text())
    assert saved["config"]["preset"] == "smoke"
    assert set(saved["rho"]) == {"1", "0.05"} and len(saved["nulls"]) == 2
    for r in saved["rho"].values():
        for mode in ("open_trained", "open_heldout", "blackbox", "blackbox_t0.5", "blackbox_served",
                     "blackbox_served_t0.5"):
            assert 0 < r[mode]["p_value"] <= 1
        assert (r["blackbox"]["temperature"], r["blackbox_t0.5"]["temperature"]) == (1.0, 0.5)
    # the served-prompts mode of ρ = 5 % puts only the 5 prompts of its watermarked texts to the
    # student (100 training texts): fewer distinct tuples than the first-prompts mode
    r5 = saved["rho"]["0.05"]
    assert 0 < r5["blackbox_served"]["n_scored"] < r5["blackbox"]["n_scored"]
    assert set(saved["summary"]) == {"open_heldout", "open_trained_size", "blackbox", "blackbox_t0.5",
                                     "blackbox_served", "blackbox_served_t0.5"}
    assert all(len(s["null_p_values"]) == 2 for s in saved["summary"].values())
    assert saved["served_self_check"]["p_value"] < 1e-6  # the teacher's served text carries the key
    table = bench.markdown_table(log)
    assert "| 100% |" in table and "black-box, first prompts, temperature 0.5" in table
    assert "| 5% | first | 0.5 |" in table and "| 5% | served | 0.5 |" in table
    assert "black-box, served prompts (as many as ρ = 5 %), temperature 1" in table


def test_cycled_and_served_filter(bench):
    assert bench.cycled([[1], [2], [3]], 7) == [[1], [2], [3], [1], [2], [3], [1]]
    lm = sys.modules["lm"]
    import torch
    vocab = lm.Vocab(torch.tensor([0, 17, 250, 4096]))
    # windows are counted where a token follows them: 17 and 250 in two texts, 4096 in one
    answers = [[1, 2, 3], [1, 2, 1], [3, 3]]
    got = bench.frequent_windows(vocab, answers, {"min_window_df": 2}, 1)
    assert got == {(17,), (250,)}


def test_green_bias_h2_adds_delta_exactly_on_green_candidates(bench):
    import torch

    lm = sys.modules["lm"]
    from distillscope.watermark import make_scheme
    scheme = make_scheme("kgw", bench.bench_key("test-h2"), gamma=0.25, delta=2.0, context_width=2)
    vocab = lm.Vocab(torch.tensor([0, 17, 250, 4096, 30000, 49151]))
    proc = lm.GreenBias(scheme, vocab, 2.0)
    ids = torch.tensor([[0, 3, 1], [0, 5, 5]])
    out = proc(ids, torch.zeros(2, vocab.size))
    det = scheme.detector()
    for r in range(2):
        window = tuple(int(vocab.real[i]) for i in ids[r, -2:])
        for y in range(vocab.size):
            green = det.score_pairs([(window, int(vocab.real[y]))]).score == 1
            assert float(out[r, y]) == (2.0 if green else 0.0)


@pytest.mark.slow
def test_calibration_smoke(bench, tmp_path):
    spec = importlib.util.spec_from_file_location("bench_audit_calibrate", BENCH / "calibrate.py")
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(BENCH))
    try:
        spec.loader.exec_module(mod)
        out = mod.main(["--preset", "smoke", "--keys", "3", "--work", str(tmp_path / "w"),
                        "--out", str(tmp_path / "cal.json")])
    finally:
        sys.path.remove(str(BENCH))
    assert set(out["modes"]) == {"open_heldout", "blackbox"}
    assert all(len(m["p_values"]) == 3 and all(0 < p <= 1 for p in m["p_values"]) for m in out["modes"].values())


def test_merge_joins_disjoint_null_ranges(bench):
    def log(first, count, rho):
        nulls = [{"key_id": f"k{i}", "open_heldout": {"p_value": 0.1 * (i + 1)},
                  "open_trained_size": {"p_value": 0.5}, "blackbox": {"p_value": 0.05 * (i + 1)}}
                 for i in range(first, first + count)]
        return {"config": {"preset": "x", "nulls": count, "first_null": first, "rhos": rho, "vocab": 8},
                "rho": {"0.05": {}} if rho else {}, "nulls": nulls, "summary": bench.summarise(nulls),
                "seconds": 10.0}

    a, b = log(0, 2, [0.05]), log(2, 3, [])
    merged = bench.merge([a, b])
    assert [n["key_id"] for n in merged["nulls"]] == ["k0", "k1", "k2", "k3", "k4"]
    assert merged["rho"] == {"0.05": {}} and merged["config"]["nulls"] == 5
    assert merged["summary"]["blackbox"]["null_p_values"] == pytest.approx([0.05, 0.1, 0.15, 0.2, 0.25])
    assert merged["summary"]["open_heldout"]["null_fpr_at_0.01"] == 0.0
    with pytest.raises(SystemExit, match="appears twice"):
        bench.merge([a, a])
    with pytest.raises(SystemExit, match="differ in configuration"):
        bench.merge([a, {**b, "config": {**b["config"], "vocab": 16}}])
