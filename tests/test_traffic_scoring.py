"""The combined score on constructed benign populations with known structure: volume-aware
normalisation, conformal p-values over the whole population, a checked tail, no resolution floor."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from distillscope.errors import TrafficError
from distillscope.traffic.features import LOG_SCALED
from distillscope.traffic.scoring import SCORED, Calibration, ScoringConfig, calibrate_scores

CONFIG = ScoringConfig(alpha=0.01)


def _benign(n_accounts: int, seed: int, heavy_share: float = 0.03) -> pd.DataFrame:
    """Benign accounts whose features all drift with volume (a heavy account asks for more, paces
    more regularly, ...): location and noise both depend on ln n."""
    g = np.random.default_rng(seed)
    heavy = g.random(n_accounts) < heavy_share
    n = np.where(heavy, g.integers(300, 3000, n_accounts), g.integers(5, 60, n_accounts)).astype(float)
    ln = np.log(n)
    frame = {"n_requests": n}
    for i, (f, (direction, _)) in enumerate(SCORED.items()):
        v = 0.3 * direction * ln + (1.0 + 0.5 * (i % 3)) * g.standard_normal(n_accounts) / np.sqrt(1 + 0.2 * ln)
        frame[f] = np.exp(v) if f in LOG_SCALED else v
    return pd.DataFrame(frame)


def _calibrate(frame: pd.DataFrame, config: ScoringConfig = CONFIG) -> Calibration:
    return calibrate_scores(frame, pd.DataFrame(columns=frame.columns), config)


def _fpr(cal: Calibration, frame: pd.DataFrame) -> float:
    return float((cal.p_values(cal.score(frame)) <= cal.config.alpha).mean())


def test_fpr_at_alpha_holds_on_fresh_benign_accounts_of_every_volume():
    cal = _calibrate(_benign(3000, seed=1))
    fresh = _benign(20_000, seed=2, heavy_share=0.2)
    heavy = fresh.n_requests >= 300
    for part in (fresh, fresh[heavy], fresh[~heavy]):
        k = int(round(_fpr(cal, part) * len(part)))
        # one-sided binomial test of "FPR <= alpha" at the 0.1% level
        assert stats.binomtest(k, len(part), cal.config.alpha, alternative="greater").pvalue > 1e-3, (k, len(part))


def test_gpd_tail_gives_thresholds_below_one_over_n():
    cfg = ScoringConfig(alpha=2e-4)                 # below 1 / N: needs the fitted tail
    cal = _calibrate(_benign(1500, seed=3), cfg)
    tail = cal.tail_
    assert np.isfinite(cal.account_threshold) and cal.account_threshold > max(tail.scores)
    assert tail.ks_p > 0.01                          # the fit is checked and passes here
    fresh = _benign(30_000, seed=4)
    k = int(round(_fpr(cal, fresh) * len(fresh)))
    assert stats.binomtest(k, len(fresh), cfg.alpha, alternative="greater").pvalue > 1e-3, k
    assert cal.p_values(np.array([cal.account_threshold]))[0] == pytest.approx(cfg.alpha, rel=1e-6)


def test_resolution_does_not_floor_at_a_small_volume_stratum():
    benign = _benign(3000, seed=5, heavy_share=0.01)          # ~30 heavy accounts among 3,000
    cal = _calibrate(benign)
    n_heavy = int((benign.n_requests >= 300).sum())
    assert n_heavy < 60
    extreme = benign.iloc[[0, 0]].copy()
    extreme["n_requests"] = [20.0, 2000.0]
    norm = cal.normaliser_
    for f, (direction, _) in SCORED.items():                  # 8 benign spreads beyond the median at each volume
        m, s = norm.at(f, extreme.n_requests.to_numpy())
        v = (m + 8 * s) * direction
        extreme[f] = np.expm1(v) if f in LOG_SCALED else v
    scores = cal.score(extreme)
    assert scores[0] == pytest.approx(scores[1], rel=1e-6)    # same evidence, same score at 20 and 2,000 requests
    p = cal.p_values(scores)
    assert p[1] < 1 / (n_heavy + 1) / 10                      # far below the old stratum floor 1/(n_heavy+1)
    assert p[1] <= 1 / (cal.tail_.n + 1)


def test_correlated_views_of_one_behaviour_count_once():
    cal = _calibrate(_benign(2000, seed=6))
    row = pd.DataFrame([{**{f: np.nan for f in SCORED}, "n_requests": 50.0}])
    one, four = row.copy(), row.copy()
    norm = cal.normaliser_
    for frame, feats in ((one, ["logprob_share"]), (four, ["logprob_share", "mean_top_logprobs", "harvest_share",
                                                            "logprob_breadth"])):
        for f in feats:
            m, s = norm.at(f, np.array([50.0]))
            v = (m + 6 * s) * SCORED[f][0]
            frame[f] = np.expm1(v) if f in LOG_SCALED else v
    assert cal.score(one)[0] == pytest.approx(cal.score(four)[0]) == pytest.approx(6.0)
    two = one.copy()
    m, s = norm.at("cot_share", np.array([50.0]))
    two["cot_share"] = m + 6 * s                               # a second behaviour adds
    assert cal.score(two)[0] == pytest.approx(12.0)


def test_missing_features_add_nothing_and_config_is_checked(tmp_path):
    cal = _calibrate(_benign(500, seed=7))
    empty = pd.DataFrame([{**{f: np.nan for f in SCORED}, "n_requests": 100.0}])
    assert cal.score(empty)[0] == 0.0
    with pytest.raises(TrafficError, match="alpha"):
        ScoringConfig(alpha=0.7)
    with pytest.raises(TrafficError, match="weights"):
        ScoringConfig(weights=(("no_such_feature", 1.0),))
    path = cal.save(tmp_path / "c.json")
    again = Calibration.load(path)
    assert again.score(empty)[0] == 0.0 and again.account_threshold == cal.account_threshold
    assert np.allclose(again.score(_benign(50, seed=8)), cal.score(_benign(50, seed=8)))
