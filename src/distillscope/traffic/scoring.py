"""Scores against a benign reference, with thresholds set from benign data only.

For every scored feature (:data:`SCORED`: the SQL features of :data:`features.SCORED_FEATURES`
and the distribution test's kernel MMD, :mod:`.distribution`) an entity's value is compared
with the same feature over benign reference accounts of similar volume (strata of
``n_requests``): the empirical tail probability ``p = (1 + #{benign at least as extreme}) /
(n_benign + 1)`` in the distillation direction. The score is ``sum(-log10 p)`` over the features
that are present -- a missing feature adds nothing, so missing data can only lower a score.
The flag threshold is the ``1 - alpha`` quantile of the reference accounts' own scores (their max
when the reference is too small for that quantile); campaigns must also beat every benign
cluster found in the reference.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from distillscope.errors import TrafficError
from distillscope.traffic.distribution import (DISTRIBUTION_FEATURE, DISTRIBUTION_MEANING, DistributionReference,
                                               input_shifts)
from distillscope.traffic.features import SCORED_FEATURES

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2
MIN_REFERENCE = 30

#: Everything the scorer reads: the SQL features and the distribution test's statistic.
SCORED: dict[str, tuple[int, str]] = {**SCORED_FEATURES, DISTRIBUTION_FEATURE: (1, DISTRIBUTION_MEANING)}


@dataclass(frozen=True)
class ScoringConfig:
    """alpha: target benign false-positive rate of the account threshold (0.0002; with fewer than
    1/alpha scored reference accounts the threshold is the reference maximum, i.e. no benign
    reference account would be flagged).
    strata: lower bounds of the n_requests strata (1, 5, 20, 100, 500). min_stratum: a stratum with
    fewer reference accounts borrows its neighbours' (30; borrowing more mixes volumes, and the
    volume-dependent features -- the distribution test above all -- lose their calibration).
    min_requests: accounts with fewer requests are never flagged on their own, only through a
    campaign (5). margin: the flag
    thresholds are the benign quantile times this factor (1.25), because the scanned population is
    usually larger than the reference and its benign tail reaches further than the reference's.
    common_floor: a feature's p-values are floored at the coarsest resolution any stratum has
    (``1 / (n + 1)`` of the stratum with the fewest reference values, True): every volume stratum
    can then reach the same score, so one global threshold treats high-volume accounts (few
    benign references: batch jobs, harnesses) like low-volume ones. The real-time guard scores
    without it (:meth:`Calibration.threshold_for`)."""

    alpha: float = 0.0002
    margin: float = 1.25
    strata: tuple[int, ...] = (1, 5, 20, 100, 500)
    min_stratum: int = 30
    min_requests: int = 5
    common_floor: bool = True

    def __post_init__(self) -> None:
        if self.margin < 1.0:
            raise TrafficError(f"margin={self.margin} must be at least 1", hint="e.g. 1.25")
        if not 0.0 < self.alpha < 0.5:
            raise TrafficError(f"alpha={self.alpha} must be in (0, 0.5)", hint="e.g. 0.0002 for 0.02% benign FPR")
        if list(self.strata) != sorted(self.strata) or self.strata[0] != 1:
            raise TrafficError(f"strata {self.strata} must ascend from 1", hint="e.g. (1, 5, 20, 100, 500)")


@dataclass(frozen=True)
class FeatureEvidence:
    """One feature's contribution to a score."""

    feature: str
    value: float
    benign_median: float
    p_value: float
    meaning: str


@dataclass(frozen=True)
class Calibration:
    """Benign reference feature values per stratum and the thresholds derived from them."""

    config: ScoringConfig
    reference: dict[int, dict[str, list[float]]]
    account_threshold: float
    campaign_threshold: float
    n_reference: int
    n_reference_clusters: int
    reference_rows: list[list[float | None]] = field(default_factory=list)
    distribution: dict | None = None
    source: str = "reference"
    version: int = field(default=FORMAT_VERSION)

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        data["config"]["strata"] = list(self.config.strata)
        p.write_text(json.dumps(data))
        return p

    @classmethod
    def load(cls, path: str | Path) -> "Calibration":
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError) as exc:
            raise TrafficError(f"calibration {p} cannot be read: {exc}",
                               hint="create one with: distillscope traffic calibrate BENIGN_LOG -o FILE") from exc
        if data.get("version") != FORMAT_VERSION:
            raise TrafficError(f"calibration {p} has format version {data.get('version')}, expected "
                               f"{FORMAT_VERSION}", hint="re-run distillscope traffic calibrate")
        cfg = data.pop("config")
        cfg["strata"] = tuple(cfg["strata"])
        data["reference"] = {int(k): v for k, v in data["reference"].items()}
        return cls(config=ScoringConfig(**cfg), **data)

    def reference_frame(self) -> pd.DataFrame:
        """The benign reference accounts' ``n_requests`` and scored features."""
        return pd.DataFrame(self.reference_rows, columns=["n_requests", *SCORED], dtype=float)

    @cached_property
    def distribution_reference(self) -> DistributionReference | None:
        """The benign side of the distribution test (None when calibrated without it; parsed once)."""
        return DistributionReference.from_dict(self.distribution) if self.distribution else None

    def threshold_for(self, names: tuple[str, ...]) -> float:
        """The account threshold for a score over only ``names`` (e.g. the real-time guard's subset)."""
        ref = self.reference_frame()
        return _threshold(score(ref, self.reference, self.config, names, common_floor=False),
                          ref.n_requests.to_numpy(), self.config)


def _threshold(scores: np.ndarray, n_requests: np.ndarray, config: ScoringConfig) -> float:
    eligible = scores[n_requests >= config.min_requests]
    eligible = eligible if len(eligible) else scores
    if len(eligible) * config.alpha >= 1:
        return float(np.quantile(eligible, 1 - config.alpha, method="higher"))
    logger.warning("benign reference of %d scored accounts is too small for alpha=%g; threshold = its max",
                   len(eligible), config.alpha)
    return float(eligible.max())


def _stratum(n: np.ndarray, strata: tuple[int, ...]) -> np.ndarray:
    return np.searchsorted(np.asarray(strata), n, side="right") - 1


def _reference_tables(features: pd.DataFrame, config: ScoringConfig) -> dict[int, dict[str, list[float]]]:
    strata = _stratum(features.n_requests.to_numpy(), config.strata)
    out: dict[int, dict[str, list[float]]] = {}
    for s in range(len(config.strata)):
        # Borrow neighbouring strata until enough benign accounts are in the reference.
        lo, hi = s, s
        while (np.isin(strata, range(lo, hi + 1)).sum() < config.min_stratum
               and (lo > 0 or hi < len(config.strata) - 1)):
            lo, hi = max(0, lo - 1), min(len(config.strata) - 1, hi + 1)
        sel = features[np.isin(strata, range(lo, hi + 1))]
        out[s] = {f: sorted(float(v) for v in sel[f].dropna()) for f in SCORED if f in sel}
    return out


def _tail_p(values: np.ndarray, ref: list[float], direction: int) -> np.ndarray:
    """Right-tail (direction +1) or left-tail (-1) empirical p-values with add-one smoothing; NaN -> 1."""
    r = np.asarray(ref, dtype=float)
    p = np.ones(len(values))
    ok = ~np.isnan(values)
    if len(r) == 0 or not ok.any():
        return p
    if direction > 0:
        count = len(r) - np.searchsorted(r, values[ok], side="left")
    else:
        count = np.searchsorted(r, values[ok], side="right")
    p[ok] = (1 + count) / (len(r) + 1)
    return p


def feature_pvalues(features: pd.DataFrame, reference: dict[int, dict[str, list[float]]],
                    config: ScoringConfig, names: tuple[str, ...] | None = None, *,
                    common_floor: bool | None = None) -> pd.DataFrame:
    """Per entity and scored feature, the benign tail probability (1.0 where the feature is missing),
    floored at the feature's coarsest stratum resolution when ``common_floor`` (default: the config's)."""
    names = names or tuple(SCORED)
    floor = config.common_floor if common_floor is None else common_floor
    strata = _stratum(features.n_requests.to_numpy(), config.strata)
    out = pd.DataFrame(index=features.index, columns=list(names), dtype=float)
    for s in np.unique(strata):
        rows = strata == s
        for f in names:
            direction = SCORED[f][0]
            if f not in features or f not in reference[int(s)]:
                out.loc[rows, f] = 1.0     # not computed: no evidence
                continue
            vals = features.loc[rows, f].to_numpy(dtype=float)
            p = _tail_p(vals, reference[int(s)][f], direction)
            out.loc[rows, f] = np.maximum(p, _floor(reference, config, f)) if floor else p
    return out


def _floor(reference: dict[int, dict[str, list[float]]], config: ScoringConfig, feature: str) -> float:
    """The coarsest p-value resolution of ``feature`` over the strata whose accounts can be flagged on
    their own (lower bound at least ``min_requests``; all strata if none)."""
    flaggable = [s for s, lo in enumerate(config.strata) if lo >= config.min_requests] or list(reference)
    return max(1.0 / (len(reference[s].get(feature, ())) + 1) for s in flaggable)


def score(features: pd.DataFrame, reference: dict[int, dict[str, list[float]]], config: ScoringConfig,
          names: tuple[str, ...] | None = None, *, common_floor: bool | None = None) -> np.ndarray:
    """``sum(-log10 p)`` over the scored features (or the subset ``names``) of each entity."""
    if features.empty:
        return np.zeros(0)
    p = feature_pvalues(features, reference, config, names, common_floor=common_floor)
    return (-np.log10(p.to_numpy(dtype=float))).sum(axis=1)


def calibrate_scores(account_features: pd.DataFrame, cluster_features: pd.DataFrame,
                     config: ScoringConfig = ScoringConfig(), source: str = "reference",
                     distribution: DistributionReference | None = None) -> Calibration:
    """Build a calibration from benign reference accounts (and the benign clusters found among them)."""
    if len(account_features) < MIN_REFERENCE:
        raise TrafficError(f"the benign reference has only {len(account_features)} accounts",
                           hint=f"use a reference log with at least {MIN_REFERENCE} (better 1000+) accounts")
    reference = _reference_tables(account_features, config)
    ref_scores = score(account_features, reference, config)
    thr = _threshold(ref_scores, account_features.n_requests.to_numpy(), config)
    rows = account_features.reindex(columns=["n_requests", *SCORED]).astype(float)
    reference_rows = [[None if pd.isna(v) else float(v) for v in r] for r in rows.itertuples(index=False)]
    cluster_max = float(score(cluster_features, reference, config).max()) if len(cluster_features) else 0.0
    thr *= config.margin
    return Calibration(config, reference, account_threshold=thr, campaign_threshold=max(thr, cluster_max * config.margin),
                       n_reference=len(account_features), n_reference_clusters=len(cluster_features),
                       reference_rows=reference_rows, source=source,
                       distribution=distribution.to_dict() if distribution else None)


def evidence(row: pd.Series, pvalues: pd.Series, reference: dict[str, list[float]], top: int = 5,
             distribution: DistributionReference | None = None) -> tuple[FeatureEvidence, ...]:
    """The features that contribute most to one entity's score (for the distribution test, its meaning
    names the request inputs that differ most from benign traffic)."""
    order = list(pvalues.astype(float).sort_values(kind="stable").index[:top])
    if DISTRIBUTION_FEATURE in pvalues and DISTRIBUTION_FEATURE not in order:
        order.append(DISTRIBUTION_FEATURE)         # the distribution test is always shown when it counts
    out = []
    for f in order:
        p = float(pvalues[f])
        if p >= 0.5 or pd.isna(row[f]):
            continue
        ref = reference[f]
        meaning = SCORED[f][1]
        if f == DISTRIBUTION_FEATURE and distribution is not None:
            meaning += f"; largest shifts (account vs benign mean): {input_shifts(row, distribution)}"
        out.append(FeatureEvidence(f, float(row[f]), float(np.median(ref)) if ref else float("nan"), p, meaning))
    return tuple(out)
