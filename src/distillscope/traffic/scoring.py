"""One combined score per entity, calibrated over the whole benign population with volume as a covariate.

Three steps, all fitted on benign traffic only:

1. **Volume-aware normalisation** (:class:`Normaliser`). Each scored feature ``x`` is turned
   into the distillation direction (``d * x``, ``log1p`` first for heavy-tailed counts) and
   standardised against benign accounts *of similar volume*: ``z = (v - m(n)) / s(n)``, where
   the centre ``m`` is the kernel-weighted benign median and the scale ``s`` the upper-tail
   spread (``(q90 - q50) / 1.28``, at least ``(q99 - q50) / 2.33`` and, for shares, at least the
   binomial noise ``sqrt(p (1 - p) / n)`` at the benign mean rate ``p >= 0.01``) at ``ln n_requests``, with a
   Gaussian kernel in ``ln n`` that widens until it holds ``min_effective`` benign accounts. The
   centres and scales live on a grid of knots and are interpolated, so volume is a smooth
   covariate and there are no strata: a value far beyond every benign account of its volume
   gets a large ``z`` instead of hitting a ``1 / (n_stratum + 1)`` floor.
2. **One score.** ``S = sum_g max_{f in g} w_f * clip(z_f, 0, cap)`` over behaviour groups
   :data:`GROUPS` (correlated views of one behaviour -- four logprob features -- count once; a
   missing feature adds 0; ``cap`` bounds what one behaviour can contribute).
3. **Conformal p-values over all benign accounts.** The benign accounts' own scores are
   cross-fitted (``folds``-fold: an account is scored by a normaliser fitted without it), so
   they are distributed like a new benign account's score. ``p(S) = (1 + #{benign >= S}) /
   (N + 1)`` pools every volume; in the far tail (the top ``tail_share`` of benign scores) a
   generalised Pareto distribution is fitted to the exceedances and checked by a
   Kolmogorov-Smirnov test (stored with the calibration), so p-values below ``1 / (N + 1)`` --
   and thresholds for ``alpha < 1 / N`` -- are extrapolated from a checked model, not floored.
   The account threshold is the score at ``p = alpha``: no margins.

A calibration file carries :data:`FORMAT_VERSION`; a file of another version is refused.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from distillscope.errors import TrafficError
from distillscope.traffic.distribution import (DISTRIBUTION_FEATURE, DISTRIBUTION_MEANING, DistributionReference,
                                               input_shifts)
from distillscope.traffic.features import FEATURE_GROUPS, LOG_SCALED, SCORED_FEATURES

logger = logging.getLogger(__name__)

#: Schema version of calibration files; a calibration written by another version is refused.
FORMAT_VERSION = 3
MIN_REFERENCE = 30

#: Everything the scorer reads: the SQL features and the distribution test's statistic.
SCORED: dict[str, tuple[int, str]] = {**SCORED_FEATURES, DISTRIBUTION_FEATURE: (1, DISTRIBUTION_MEANING)}
#: The behaviour groups of the combined score (the distribution test is a group of its own).
GROUPS: dict[str, tuple[str, ...]] = {**FEATURE_GROUPS, "distribution": (DISTRIBUTION_FEATURE,)}


@dataclass(frozen=True)
class ScoringConfig:
    """Settings of the combined score and its calibration.

    alpha: target benign false-positive rate per scored entity (0.001). min_requests: accounts
    with fewer requests are never flagged on their own, only through a campaign (5).
    cap: the most one feature's standardised excess adds to the score (12). bandwidth: width of
    the volume kernel in ``ln n_requests`` (0.35). min_effective: the kernel widens until its
    weights sum to this many benign accounts (20). knots: grid points in ``ln n`` (24).
    folds: cross-fitting folds for the benign scores (5). tail_share / min_tail: the generalised
    Pareto tail is fitted to the top ``max(min_tail, tail_share * N)`` benign scores (0.05, 30).
    weights: optional ``(feature, weight)`` pairs (default weight 1; weights >= 0).
    """

    alpha: float = 0.001
    min_requests: int = 5
    cap: float = 12.0
    bandwidth: float = 0.35
    min_effective: int = 20
    knots: int = 24
    folds: int = 5
    tail_share: float = 0.05
    min_tail: int = 30
    weights: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 0.5:
            raise TrafficError(f"alpha={self.alpha} must be in (0, 0.5)", hint="e.g. 0.001 for 0.1% benign FPR")
        if self.cap <= 0 or self.bandwidth <= 0 or self.min_effective < 5 or self.knots < 2 or self.folds < 2:
            raise TrafficError(f"invalid scoring config cap={self.cap} bandwidth={self.bandwidth} "
                               f"min_effective={self.min_effective} knots={self.knots} folds={self.folds}",
                               hint="cap > 0, bandwidth > 0, min_effective >= 5, knots >= 2, folds >= 2")
        unknown = [f for f, _ in self.weights if f not in SCORED]
        if unknown or any(w < 0 for _, w in self.weights):
            raise TrafficError(f"invalid feature weights {self.weights}",
                               hint=f"weights >= 0 for features among {', '.join(SCORED)}")

    def weight(self, feature: str) -> float:
        return dict(self.weights).get(feature, 1.0)


@dataclass(frozen=True)
class FeatureEvidence:
    """One feature's contribution: value, benign median at this volume, excess ``z`` (in benign
    upper-tail spreads) and the share of benign accounts (any volume) with at least this excess."""

    feature: str
    value: float
    benign_median: float
    z: float
    p_value: float
    meaning: str


def _directed(feature: str, x: np.ndarray) -> np.ndarray:
    v = np.log1p(np.maximum(x, 0.0)) if feature in LOG_SCALED else x
    return SCORED[feature][0] * v


def _undirected(feature: str, v: float) -> float:
    x = SCORED[feature][0] * v
    return float(np.expm1(x)) if feature in LOG_SCALED else float(x)


def _wquantiles(v: np.ndarray, w: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    order = np.argsort(v, kind="stable")
    cw = np.cumsum(w[order])
    cw /= cw[-1]
    return np.array([v[order][min(len(v) - 1, int(np.searchsorted(cw, q)))] for q in qs])


@dataclass(frozen=True)
class Normaliser:
    """Benign centre and upper-tail scale of every scored feature on a grid of ``ln n`` knots."""

    knots: tuple[float, ...]
    centre: dict[str, tuple[float, ...]]
    scale: dict[str, tuple[float, ...]]

    @classmethod
    def fit(cls, frame: pd.DataFrame, config: ScoringConfig) -> "Normaliser":
        logn = np.log(frame.n_requests.to_numpy(dtype=float).clip(min=1))
        knots = np.linspace(logn.min(), max(logn.max(), logn.min() + 1e-6), config.knots)
        centre, scale = {}, {}
        for f in SCORED:
            x = frame[f].to_numpy(dtype=float) if f in frame else np.full(len(frame), np.nan)
            ok = ~np.isnan(x)
            if ok.sum() < 5:
                continue
            v, ln = _directed(f, x[ok]), logn[ok]
            q50g, q99g, q999g = np.quantile(v, (0.5, 0.99, 0.999))
            floor = max((q99g - q50g) / 2.326, (q999g - q50g) / 3.09, 1e-3 * (np.abs(v).max() + 1e-9), 1e-6)
            share = f.endswith("_share")
            pbar = min(max(float(np.mean(x[ok])), 0.01), 0.5) if share else 0.0
            cs, ss = [], []
            for k in knots:
                h = config.bandwidth
                while True:
                    w = np.exp(-0.5 * ((ln - k) / h) ** 2)
                    if w.sum() >= min(config.min_effective, len(v)) or h > 20:
                        break
                    h *= 1.5
                q50, q90, q99 = _wquantiles(v, w, (0.5, 0.9, 0.99))
                # a share over n requests cannot be known better than its binomial noise at the benign rate
                noise = math.sqrt(pbar * (1 - pbar) / math.exp(k)) if share else 0.0
                cs.append(float(q50))
                ss.append(float(max((q90 - q50) / 1.2816, (q99 - q50) / 2.326, floor, noise)))
            centre[f], scale[f] = tuple(cs), tuple(ss)
        return cls(tuple(float(k) for k in knots), centre, scale)

    def at(self, feature: str, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ln = np.log(np.asarray(n, dtype=float).clip(min=1))
        return (np.interp(ln, self.knots, self.centre[feature]), np.interp(ln, self.knots, self.scale[feature]))

    def z_matrix(self, x: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Standardised excesses of a (rows x :data:`SCORED`) value matrix at volumes ``n``."""
        out = np.full(x.shape, np.nan)
        ln = np.log(np.asarray(n, dtype=float).clip(min=1))
        for j, f in enumerate(SCORED):
            if f in self.centre:
                m = np.interp(ln, self.knots, self.centre[f])
                s = np.interp(ln, self.knots, self.scale[f])
                out[:, j] = (_directed(f, x[:, j]) - m) / s
        return out

    def z(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Standardised excess per entity and feature (NaN where the feature is missing or unfitted)."""
        x = frame.reindex(columns=list(SCORED)).to_numpy(dtype=float)
        return pd.DataFrame(self.z_matrix(x, frame.n_requests.to_numpy(dtype=float)), index=frame.index,
                            columns=list(SCORED))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Normaliser":
        return cls(tuple(d["knots"]), {k: tuple(v) for k, v in d["centre"].items()},
                   {k: tuple(v) for k, v in d["scale"].items()})


_INDEX = {f: j for j, f in enumerate(SCORED)}


def combine_matrix(z: np.ndarray, config: ScoringConfig) -> np.ndarray:
    """``sum_groups max_{f in group} w_f * clip(z_f, 0, cap)`` of a (rows x :data:`SCORED`) matrix;
    a missing feature adds nothing."""
    v = np.nan_to_num(z, nan=0.0).clip(0.0, config.cap) * np.array([config.weight(f) for f in SCORED])
    total = np.zeros(len(z))
    for members in GROUPS.values():
        total += v[:, [_INDEX[f] for f in members]].max(axis=1)
    return total


def group_profile(z: np.ndarray, config: ScoringConfig) -> np.ndarray:
    """Per row, each behaviour group's contribution (rows x :data:`GROUPS`): the behaviour profile."""
    v = np.nan_to_num(z, nan=0.0).clip(0.0, config.cap) * np.array([config.weight(f) for f in SCORED])
    return np.stack([v[:, [_INDEX[f] for f in members]].max(axis=1) for members in GROUPS.values()], axis=1)


def combine(z: pd.DataFrame, config: ScoringConfig) -> np.ndarray:
    """:func:`combine_matrix` of a z frame (columns :data:`SCORED`)."""
    if z.empty:
        return np.zeros(0)
    return combine_matrix(z.reindex(columns=list(SCORED)).to_numpy(dtype=float), config)


@dataclass(frozen=True)
class TailModel:
    """The benign score distribution: sorted cross-fitted scores plus a generalised Pareto tail above
    ``threshold`` (the top ``n_tail`` scores; shape ``xi``, scale ``sigma``; ``ks_p`` checks the fit)."""

    scores: tuple[float, ...]
    threshold: float
    n_tail: int
    xi: float
    sigma: float
    ks_p: float

    @classmethod
    def fit(cls, scores: np.ndarray, config: ScoringConfig) -> "TailModel":
        s = np.sort(np.asarray(scores, dtype=float))
        k = int(min(len(s) - 1, max(config.min_tail, round(config.tail_share * len(s)))))
        u = float(s[-k - 1])
        exc = s[-k:] - u
        exc = exc[exc > 0]
        if len(exc) < 10 or np.ptp(exc) == 0:
            xi, sigma, ks_p = 0.0, float(max(exc.mean() if len(exc) else 1.0, 1e-6)), float("nan")
        else:
            xi, _, sigma = stats.genpareto.fit(exc, floc=0.0)
            if xi < 0:       # a light (bounded) tail: use the exponential, never more confident than that
                xi, sigma = 0.0, float(exc.mean())
            elif xi > 0.5:
                xi = 0.5
                sigma = float(stats.genpareto.fit(exc, f0=xi, floc=0.0)[2])
            ks_p = float(stats.kstest(exc, "genpareto", args=(xi, 0.0, sigma)).pvalue)
        if not math.isnan(ks_p) and ks_p < 0.01:
            logger.warning("the generalised Pareto tail of the benign scores fits poorly (KS p = %.3g); "
                           "p-values below 1/N are approximate", ks_p)
        return cls(tuple(float(round(v, 6)) for v in s), u, k, float(xi), float(sigma), ks_p)

    @property
    def n(self) -> int:
        return len(self.scores)

    def p_values(self, score: np.ndarray) -> np.ndarray:
        """Benign tail probability of each score: conformal below the tail threshold, GPD above it."""
        s = np.asarray(score, dtype=float)
        ref = np.asarray(self.scores)
        p = (1 + len(ref) - np.searchsorted(ref, s, side="left")) / (len(ref) + 1)
        above = s > self.threshold
        if above.any():
            tail = self.n_tail / (len(ref) + 1) * stats.genpareto.sf(s[above] - self.threshold, self.xi, 0.0,
                                                                         self.sigma)
            p[above] = np.minimum(p[above], np.maximum(tail, 1e-300))
        return p

    def score_at(self, alpha: float) -> float:
        """The smallest score whose p-value is at most ``alpha``."""
        n = len(self.scores)
        if alpha * (n + 1) > self.n_tail:
            # conformal: need 1 + #{>= s} <= alpha (n + 1)
            r = int(math.floor(alpha * (n + 1))) - 1          # scores allowed at or above
            return float(np.nextafter(self.scores[n - 1 - r], np.inf)) if r >= 0 else float("inf")
        q = alpha * (n + 1) / self.n_tail
        return float(self.threshold + stats.genpareto.isf(q, self.xi, 0.0, self.sigma))


@dataclass(frozen=True)
class Calibration:
    """The benign calibration: scoring config, normaliser, benign score distribution, thresholds.

    ``window_tail`` is the null of request windows (:mod:`.windows`), ``cluster_scores`` the
    pooled scores of the clusters found in the benign reference, ``feature_z`` each feature's
    sorted cross-fitted benign excesses (for per-feature evidence)."""

    config: ScoringConfig
    normaliser: dict
    tail: dict
    account_threshold: float
    campaign_threshold: float
    n_reference: int
    n_reference_clusters: int
    feature_z: dict[str, list[float]] = field(default_factory=dict)
    window_tail: dict | None = None
    cluster_scores: list[float] = field(default_factory=list)
    behaviour_null: dict | None = None
    distribution: dict | None = None
    content_model: str = ""
    source: str = "reference"
    version: int = field(default=FORMAT_VERSION)

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        data["config"]["weights"] = [list(w) for w in self.config.weights]
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
        version = data.get("version") if isinstance(data, dict) else None
        if version != FORMAT_VERSION:
            raise TrafficError(f"calibration {p} has schema version {version}, this distillscope reads version "
                               f"{FORMAT_VERSION} only",
                               hint="re-run: distillscope traffic calibrate BENIGN_LOG -o FILE")
        cfg = data.pop("config")
        cfg["weights"] = tuple((str(f), float(w)) for f, w in cfg.get("weights", ()))
        return cls(config=ScoringConfig(**cfg), **data)

    @cached_property
    def normaliser_(self) -> Normaliser:
        return Normaliser.from_dict(self.normaliser)

    @cached_property
    def tail_(self) -> TailModel:
        return TailModel(**{k: (tuple(v) if k == "scores" else v) for k, v in self.tail.items()})

    @cached_property
    def window_tail_(self) -> TailModel | None:
        if not self.window_tail:
            return None
        return TailModel(**{k: (tuple(v) if k == "scores" else v) for k, v in self.window_tail.items()})

    @cached_property
    def distribution_reference(self) -> DistributionReference | None:
        """The benign side of the distribution test (None when calibrated without it; parsed once)."""
        return DistributionReference.from_dict(self.distribution) if self.distribution else None

    def z(self, frame: pd.DataFrame) -> pd.DataFrame:
        return self.normaliser_.z(frame)

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """The combined score of every row of a feature frame (accounts, windows, end users, clusters)."""
        return combine(self.z(frame), self.config)

    def p_values(self, scores: np.ndarray) -> np.ndarray:
        return self.tail_.p_values(scores)


def cross_fitted_z(frame: pd.DataFrame, config: ScoringConfig, seed: int = 0) -> pd.DataFrame:
    """Each benign account's excesses under a normaliser fitted without its fold."""
    folds = np.random.default_rng(seed).permutation(len(frame)) % config.folds
    out = pd.DataFrame(index=frame.index, columns=list(SCORED), dtype=float)
    for k in range(config.folds):
        held = folds == k
        norm = Normaliser.fit(frame[~held], config)
        out.loc[held] = norm.z(frame[held]).to_numpy()
    return out


def calibrate_scores(account_features: pd.DataFrame, cluster_features: pd.DataFrame,
                     config: ScoringConfig = ScoringConfig(), source: str = "reference",
                     distribution: DistributionReference | None = None,
                     window_features: pd.DataFrame | None = None, content_model: str = "") -> Calibration:
    """Build a calibration from benign reference accounts (and the benign clusters and windows among them)."""
    acc = account_features.reset_index(drop=True)
    if len(acc) < MIN_REFERENCE:
        raise TrafficError(f"the benign reference has only {len(acc)} accounts",
                           hint=f"use a reference log with at least {MIN_REFERENCE} (better 1000+) accounts")
    norm = Normaliser.fit(acc, config)
    eligible = acc.n_requests.to_numpy() >= config.min_requests
    if eligible.sum() < MIN_REFERENCE:
        raise TrafficError(f"the benign reference has only {int(eligible.sum())} accounts with "
                           f"{config.min_requests}+ requests", hint="calibrate on a longer or larger benign log")
    z = cross_fitted_z(acc, config)
    tail = TailModel.fit(combine(z[eligible], config), config)
    thr = tail.score_at(config.alpha)
    feature_z = {f: sorted(round(float(v), 4) for v in z.loc[eligible, f].dropna().clip(upper=config.cap))
                 for f in SCORED}
    cluster_scores = sorted(float(s) for s in combine(norm.z(cluster_features), config)) if len(
        cluster_features) else []
    window_tail = None
    if window_features is not None and len(window_features) >= MIN_REFERENCE:
        window_tail = asdict(TailModel.fit(combine(norm.z(window_features), config), config))
    logger.info("calibrated on %d benign accounts (%d eligible): threshold %.2f at alpha %g; tail xi=%.3f KS p=%.3g",
                len(acc), int(eligible.sum()), thr, config.alpha, tail.xi, tail.ks_p)
    return Calibration(config, norm.to_dict(), asdict(tail), account_threshold=thr,
                       campaign_threshold=max([thr, *cluster_scores]), n_reference=len(acc),
                       n_reference_clusters=len(cluster_features), feature_z=feature_z, window_tail=window_tail,
                       cluster_scores=cluster_scores, source=source,
                       distribution=distribution.to_dict() if distribution else None, content_model=content_model)


def evidence(row: pd.Series, z: pd.Series, calibration: Calibration, top: int = 5) -> tuple[FeatureEvidence, ...]:
    """The features that contribute most to one entity's score (the distribution test names the request
    inputs that differ most from benign traffic)."""
    cap = calibration.config.cap
    contrib = z.astype(float).fillna(-np.inf).clip(upper=cap)
    order = list(contrib.sort_values(ascending=False, kind="stable").index[:top])
    if DISTRIBUTION_FEATURE not in order:
        order.append(DISTRIBUTION_FEATURE)         # the distribution test is always shown when it counts
    norm = calibration.normaliser_
    dist = calibration.distribution_reference
    out = []
    for f in order:
        zf = float(contrib[f])
        if not zf > 0 or pd.isna(row.get(f)):
            continue
        ref = np.asarray(calibration.feature_z.get(f, ()), dtype=float)
        p = (1 + len(ref) - np.searchsorted(ref, zf, side="left")) / (len(ref) + 1)
        m, _ = norm.at(f, np.array([float(row["n_requests"])]))
        meaning = SCORED[f][1]
        if f == DISTRIBUTION_FEATURE and dist is not None:
            meaning += f"; largest shifts (account vs benign mean): {input_shifts(row, dist)}"
        out.append(FeatureEvidence(f, float(row[f]), _undirected(f, float(m[0])), round(zf, 3), float(p), meaning))
    return tuple(out)
