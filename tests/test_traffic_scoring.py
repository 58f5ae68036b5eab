"""Scoring on constructed reference tables with known values: stratified tail p-values and the
common p-value floor across volume strata."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from distillscope.traffic.scoring import SCORED, ScoringConfig, feature_pvalues, score

CONFIG = ScoringConfig(strata=(1, 5, 100), min_requests=5)


def _reference() -> dict[int, dict[str, list[float]]]:
    # stratum 0 (1-4 requests): 9 values; stratum 1 (5-99): 199; stratum 2 (100+): 19
    ref = {0: list(np.linspace(0, 1, 9)), 1: list(np.linspace(0, 1, 199)), 2: list(np.linspace(0, 1, 19))}
    return {s: {f: sorted(v) for f in SCORED} for s, v in ref.items()}


def _accounts() -> pd.DataFrame:
    frame = pd.DataFrame({"n_requests": [2, 10, 500, 10]})
    for f, (direction, _) in SCORED.items():
        frame[f] = [2.0 * direction, 2.0 * direction, 2.0 * direction, np.nan]     # beyond every benign value
    return frame


def test_tail_pvalues_follow_each_stratum_without_the_floor():
    p = feature_pvalues(_accounts(), _reference(), CONFIG, ("cot_share", "gap_cv"), common_floor=False)
    assert p.cot_share.tolist() == pytest.approx([1 / 10, 1 / 200, 1 / 20, 1.0])   # NaN: no evidence
    assert p.gap_cv.tolist() == pytest.approx([1 / 10, 1 / 200, 1 / 20, 1.0])      # low direction


def test_common_floor_is_the_coarsest_flaggable_stratum():
    p = feature_pvalues(_accounts(), _reference(), CONFIG, ("cot_share",))
    # stratum 0 (below min_requests, never flagged alone) does not set the floor; stratum 2 does
    assert p.cot_share.tolist() == pytest.approx([1 / 10, 1 / 20, 1 / 20, 1.0])
    s = score(_accounts(), _reference(), CONFIG)
    assert s[1] == pytest.approx(s[2])            # same evidence at 10 and at 500 requests, same score
    assert s[2] == pytest.approx(len(SCORED) * np.log10(20)) and s[3] == 0.0
    # the guard's subset scores without the floor
    s_raw = score(_accounts(), _reference(), CONFIG, common_floor=False)
    assert s_raw[1] == pytest.approx(len(SCORED) * np.log10(200))
