"""Distribution test (kernel MMD against benign accounts): known values, engine agreement, calibration
on benign null data, and a constructed off-distribution account that it flags while its benign twin
is left alone."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from scipy import stats

from distillscope.errors import TrafficError
from distillscope.traffic import SimulationConfig, calibrate, scan, simulate
from distillscope.traffic.distribution import (DISTRIBUTION_FEATURE, DistributionConfig, DistributionReference,
                                               RandomFeatures, distribution_sql, fit_reference, mmd_statistic)
from distillscope.traffic.engines import make_engine
from distillscope.traffic.reference import benign_reference_config
from distillscope.traffic.scoring import Calibration

CONFIG = DistributionConfig(inputs=("cot", "max_tokens", "hour"), n_features=8, bandwidth=1.5, min_rows=2)


def _requests() -> pa.Table:
    """A prepared-request table with the columns the distribution SQL reads."""
    return pa.table({
        "account_id": ["A", "A", "A", "B", "B", "C", None],
        "cot": pa.array([1, 0, None, 1, 1, 0, 1], pa.int64()),
        "logprobs": pa.array([0, 5, 0, 5, None, 0, 0], pa.int64()),
        "max_tokens": pa.array([100, None, 50, 4096, 4096, 10, 10], pa.int64()),
        "completion_tokens": pa.array([20, 30, 40, 3000, 2000, 5, 5], pa.int64()),
        "prompt_tokens": pa.array([10, 10, 10, 50, 60, 8, 8], pa.int64()),
        "hour": pa.array([3, 9, 9, 23, 0, 12, 12], pa.int64()),
    })


def _inputs(cot: float, max_tokens: float | None, hour: float) -> np.ndarray:
    return np.array([cot, math.log1p(max_tokens or 0) / 4, math.cos(hour * 2 * math.pi / 24),
                     math.sin(hour * 2 * math.pi / 24)])


def _phi(x: np.ndarray, rff: RandomFeatures) -> np.ndarray:
    w, b = np.asarray(rff.weights), np.asarray(rff.offsets)
    return math.sqrt(2 / len(b)) * np.cos(x @ w.T + b)


def _run(engine, rff):
    return engine.run(distribution_sql(rff, CONFIG), {"requests": _requests()}).to_pandas().set_index("account_id")


def test_random_features_are_deterministic_and_approximate_the_rbf_kernel():
    assert RandomFeatures.draw(CONFIG) == RandomFeatures.draw(CONFIG)
    wide = DistributionConfig(inputs=CONFIG.inputs, n_features=4000, bandwidth=1.5)
    rff = RandomFeatures.draw(wide)
    x, y = _inputs(1, 100, 3), _inputs(0, 4096, 20)
    exact = math.exp(-np.sum((x - y) ** 2) / (2 * 1.5 ** 2))
    assert _phi(x, rff) @ _phi(y, rff) == pytest.approx(exact, abs=0.05)
    assert _phi(x, rff) @ _phi(x, rff) == pytest.approx(1.0, abs=0.05)


def _run_duckdb(rff: RandomFeatures) -> pd.DataFrame:
    eng = make_engine("duckdb")
    try:
        return _run(eng, rff)
    finally:
        eng.close()


def test_distribution_sql_has_known_values():
    rff = RandomFeatures.draw(CONFIG)
    out = _run_duckdb(rff)
    assert list(out.index) == ["A", "B", "C"]               # null account ignored
    # A: the row with cot NULL is left out; a NULL max_tokens counts as "not set" (0)
    a = np.stack([_inputs(1, 100, 3), _inputs(0, None, 9)])
    assert out.loc["A", "n_mmd"] == 2 and out.loc["B", "n_mmd"] == 2 and out.loc["C", "n_mmd"] == 1
    cos = np.cos(a @ np.asarray(rff.weights).T + np.asarray(rff.offsets))
    got = out.loc["A", [f"phi{j}" for j in range(CONFIG.n_features)]].to_numpy(dtype=float)
    assert np.allclose(got, cos.mean(axis=0), atol=1e-12)
    assert out.loc["A", "phi_sq"] == pytest.approx((cos ** 2).sum(axis=1).mean())
    assert out.loc["A", "x0"] == pytest.approx(0.5) and out.loc["B", "x1"] == pytest.approx(math.log1p(4096) / 4)


def test_mmd_statistic_is_the_unbiased_mmd_to_the_nearest_benign_accounts():
    rng = np.random.default_rng(0)
    rff = RandomFeatures.draw(CONFIG)
    cfg = DistributionConfig(inputs=CONFIG.inputs, n_features=8, bandwidth=1.5, min_rows=2, neighbours=2)

    def frame(samples: list[np.ndarray]) -> pd.DataFrame:
        rows = []
        for i, x in enumerate(samples):
            c = np.cos(x @ np.asarray(rff.weights).T + np.asarray(rff.offsets))
            rows.append({"account_id": f"u{i}", "n_mmd": len(x), "phi_sq": (c ** 2).sum(axis=1).mean(),
                         **{f"phi{j}": c[:, j].mean() for j in range(8)},
                         **{f"x{k}": x[:, k].mean() for k in range(4)}})
        return pd.DataFrame(rows)

    benign = [rng.normal(0, 0.3, size=(n, 4)) + 0.2 * i for i, n in enumerate((6, 9, 12, 7))]
    ref = fit_reference(frame(benign), cfg, rff)
    probe = rng.normal(1.0, 0.3, size=(8, 4))

    def unbiased(x, y):
        fx, fy = _phi(x, rff), _phi(y, rff)
        kxx, kyy = fx @ fx.T, fy @ fy.T
        return ((kxx.sum() - np.trace(kxx)) / (len(x) * (len(x) - 1))
                + (kyy.sum() - np.trace(kyy)) / (len(y) * (len(y) - 1)) - 2 * (fx @ fy.T).mean())

    expected = np.sort([unbiased(probe, b) for b in benign])[:2].mean()
    # (reference embeddings are stored to 9 decimals)
    assert mmd_statistic(frame([probe]), ref)[0] == pytest.approx(expected, abs=1e-7)
    loo = mmd_statistic(frame(benign), ref, leave_one_out=True)
    assert loo[0] == pytest.approx(np.sort([unbiased(benign[0], b) for b in benign[1:]])[:2].mean(), abs=1e-7)
    assert np.isnan(mmd_statistic(frame([probe[:1]]), ref)[0])        # below min_rows: no statistic


def test_config_is_validated():
    with pytest.raises(TrafficError, match="unknown distribution inputs"):
        DistributionConfig(inputs=("colour",))
    with pytest.raises(TrafficError, match="neighbours"):
        DistributionConfig(neighbours=0)


@pytest.mark.spark
@pytest.mark.slow
def test_duckdb_and_spark_agree_on_the_distribution_sql(spark_engine):
    rff = RandomFeatures.draw(CONFIG)
    d = _run_duckdb(rff)
    s = _run(spark_engine, rff)
    assert list(d.index) == list(s.index) and list(d.columns) == list(s.columns)
    assert np.allclose(d.to_numpy(dtype=float), s.to_numpy(dtype=float), rtol=1e-9, atol=1e-12)


@pytest.fixture(scope="module")
def null_scan(traffic_calibration):
    """A benign-only log (fresh seed, hard negatives included) scored against the benign calibration."""
    sim = simulate(benign_reference_config(n_benign=900, seed=12345))
    return scan(sim.log, traffic_calibration), sim


def test_calibration_keeps_the_distribution_reference(traffic_calibration, tmp_path):
    ref = traffic_calibration.distribution_reference
    assert isinstance(ref, DistributionReference) and len(ref.embeddings) >= 100
    loaded = Calibration.load(traffic_calibration.save(tmp_path / "cal.json"))
    assert loaded.distribution_reference == ref
    assert DISTRIBUTION_FEATURE in traffic_calibration.normaliser["centre"]
    assert len(traffic_calibration.feature_z[DISTRIBUTION_FEATURE]) >= 100


def _feature_p(cal: Calibration, acc: pd.DataFrame, feature: str) -> np.ndarray:
    """Per-feature benign tail probability of the volume-normalised excess (the evidence's p-value)."""
    z = cal.z(acc)[feature].to_numpy()
    ref = np.asarray(cal.feature_z[feature])
    p = (1 + len(ref) - np.searchsorted(ref, np.minimum(z, cal.config.cap), side="left")) / (len(ref) + 1)
    return np.where(np.isnan(z), np.nan, p)


def test_fpr_on_a_benign_log_the_calibration_never_saw(null_scan, traffic_calibration):
    """Account p-values (the combined score) and the distribution test's own p-values are calibrated on
    a fresh benign-only log: the rate of p <= alpha stays at or below alpha up to binomial noise."""
    res, _ = null_scan
    acc = res.account_features
    eligible = acc.n_requests.to_numpy() >= traffic_calibration.config.min_requests
    p_acc = acc.account_id.map({a.account_id: a.p_value for a in res.accounts}).to_numpy(dtype=float)[eligible]
    p_mmd = _feature_p(traffic_calibration, acc, DISTRIBUTION_FEATURE)
    p_mmd = p_mmd[~np.isnan(p_mmd)]
    for p in (p_acc, p_mmd):
        assert len(p) >= 400
        for alpha in (0.01, 0.05, 0.1, 0.25, 0.5):
            k = int(np.sum(p <= alpha))
            assert stats.binomtest(k, len(p), alpha, alternative="greater").pvalue > 1e-3, (alpha, k, len(p))
        assert float(np.mean(p <= 0.5)) >= 0.2           # and not degenerate (it can fail both ways)
    k = len(res.flagged_accounts)                       # flags at the configured alpha (0.001)
    assert stats.binomtest(k, len(acc), traffic_calibration.config.alpha, alternative="greater").pvalue > 1e-3, k


def _off_distribution_twin(log: pa.Table, account: str) -> pa.Table:
    """A copy of ``account``'s requests asking the same things another way: reasoning elicited,
    maximal outputs, logprobs, round the clock (from its own IP: not linked to the original)."""
    rows = log.filter(pc.equal(log.column("account_id"), account)).to_pylist()
    twin = []
    for i, r in enumerate(rows):
        prompt = r["prompt"] if r["prompt"] and not r["prompt"].startswith("[") else "Explain entropy."
        twin.append(dict(r, request_id=f"twin-{i}", account_id="twin", key_id="key-twin", client_ip="203.0.113.7",
                         ts=r["ts"] + pd.Timedelta(hours=(7 * i) % 24), prompt=f"{prompt} Think step by step.",
                         max_tokens=4096, logprobs=5, completion_tokens=2500, prompt_tokens=r["prompt_tokens"]))
    return pa.concat_tables([log, pa.Table.from_pylist(twin, schema=log.schema)])


def test_distribution_test_flags_an_off_distribution_account_not_its_benign_twin(traffic_calibration):
    sim = simulate(SimulationConfig(n_benign=120, n_batch=0, n_eval=0, n_student_groups=0, campaigns=(), days=4,
                                    seed=77))
    counts = pd.Series(sim.log.column("account_id").to_pylist()).value_counts()
    original = str(counts.index[(counts >= 12) & (counts <= 40)][0])
    res = scan(_off_distribution_twin(sim.log, original), traffic_calibration)
    acc = res.account_features.set_index("account_id")
    p = pd.Series(_feature_p(traffic_calibration, acc, DISTRIBUTION_FEATURE), index=acc.index)
    # beyond almost every benign account once volume is accounted for (the reference holds evaluation
    # harnesses that ask for reasoning and logprobs too, at every volume)
    assert p["twin"] <= 0.02 and p[original] > 0.05
    assert acc.loc["twin", DISTRIBUTION_FEATURE] > acc.loc[original, DISTRIBUTION_FEATURE]
    twin = next(a for a in res.accounts if a.account_id == "twin")
    assert twin.flagged and any(e.feature == DISTRIBUTION_FEATURE and "max_tokens" in e.meaning
                                for e in twin.evidence)
    assert not next(a for a in res.accounts if a.account_id == original).flagged
