"""Coordination without shared infrastructure: accounts that *behave* together.

A diverse hydra gives every account its own residential IP and user agent, never shares a
template and fires at random times, so the coordination graph of :mod:`.campaigns` (shared IPs,
subnets, templates, schedules) links none of them. What such accounts share is what they do:
the same client settings (a parameter fingerprint: modal ``max_tokens``, ``temperature`` and
``logprobs``), the same behaviour profile (which behaviour groups of the score are raised, see
:data:`scoring.GROUPS`), and complementary coverage of the topic taxonomy.

Procedure (:func:`behaviour_clusters`):

1. Candidates: accounts with at least ``min_requests`` requests whose own p-value (combined
   score, :mod:`.scoring`) is at most ``q`` -- moderately unusual, far from flaggable alone.
2. Candidates with the same fingerprint are linked when their behaviour profiles (clipped
   per-group excesses) are within ``radius`` of each other; connected components of at least
   ``min_accounts`` accounts are behaviour clusters.
3. Pooled evidence: under the null, a benign candidate's p-value is uniform on ``(0, q]``, so
   ``X = -2 sum ln(p_i / q)`` is chi-squared with ``2k`` degrees of freedom for ``k``
   independent benign accounts (truncated product method, Zaykin et al. 2002); the cluster's
   p-value ``P(chi2_2k >= X)`` is Bonferroni-adjusted over the clusters found.
4. The null of "clusters this large and this similar among benign accounts": the same procedure
   runs on the benign reference at calibration (:func:`behaviour_null`); a scanned cluster is
   flagged only when its adjusted p-value is at most ``alpha``, below every benign reference
   cluster's of at least its size, *and* its complementary coverage (pooled distinct topics over
   the mean per account: accounts covering disjoint slices of the taxonomy) exceeds every benign
   reference cluster's. A research group running one benchmark from ten accounts, or students on
   the same homework, behave alike but cover the same topics, not complementary ones.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from distillscope.errors import TrafficError
from distillscope.traffic.features import FeatureQuery


@dataclass(frozen=True)
class CohortConfig:
    """q: candidate p-value bound (0.2). radius: profile distance for a link, in benign spreads (3.0).
    min_accounts: smallest behaviour cluster (5). min_requests: smallest candidate account (5)."""

    q: float = 0.2
    radius: float = 3.0
    min_accounts: int = 5
    min_requests: int = 5

    def __post_init__(self) -> None:
        if not 0 < self.q < 1 or self.radius <= 0 or self.min_accounts < 2:
            raise TrafficError(f"invalid cohort config {self}", hint="0 < q < 1, radius > 0, min_accounts >= 2")


def fingerprint_sql() -> FeatureQuery:
    """Per account and parameter setting (max_tokens, temperature, logprobs): how many requests used it."""
    return FeatureQuery("parameter_fingerprints", """
SELECT account_id, CAST(COALESCE(max_tokens, -1) AS BIGINT) AS mt,
       CAST(FLOOR(COALESCE(temperature, -1) * 10) AS BIGINT) AS temp10,
       CAST(COALESCE(logprobs, -1) AS BIGINT) AS lp, COUNT(*) AS c
FROM requests WHERE account_id IS NOT NULL GROUP BY account_id, max_tokens, temperature, logprobs
""")


def fingerprints(rows: pd.DataFrame) -> pd.Series:
    """The modal parameter setting of every account, as a string key."""
    if rows.empty:
        return pd.Series(dtype=str)
    top = rows.sort_values(["account_id", "c", "mt", "temp10", "lp"], ascending=[True, False, True, True, True])
    top = top.groupby("account_id").head(1)
    return pd.Series([f"mt={a}/t={b}/lp={c}" for a, b, c in zip(top.mt, top.temp10, top.lp)],
                     index=top.account_id.to_numpy())


@dataclass(frozen=True)
class BehaviourCluster:
    """Accounts that behave together: fingerprint, pooled p-value (adjusted), coverage gain."""

    cluster_id: str
    accounts: tuple[str, ...]
    fingerprint: str
    p_value: float
    coverage_gain: float
    flagged: bool


def _clusters(ids: np.ndarray, keys: np.ndarray, profiles: np.ndarray, radius: float) -> np.ndarray:
    n = len(ids)
    a, b = [], []
    for key in np.unique(keys):
        idx = np.flatnonzero(keys == key)
        if len(idx) < 2:
            continue
        d = np.sqrt(((profiles[idx, None, :] - profiles[None, idx, :]) ** 2).sum(axis=2))
        i, j = np.nonzero(np.triu(d <= radius, k=1))
        a.extend(idx[i])
        b.extend(idx[j])
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def behaviour_clusters(accounts: pd.DataFrame, profiles: np.ndarray, p_values: np.ndarray, keys: pd.Series,
                       subjects: pd.DataFrame | None, config: CohortConfig, alpha: float,
                       null: dict | None = None) -> list[BehaviourCluster]:
    """Behaviour clusters among ``accounts`` (rows aligned with ``profiles`` and ``p_values``).

    keys: fingerprint per account_id; subjects: (account_id, subject) rows for coverage; null: the
    benign reference's clusters (:func:`behaviour_null`), None at calibration."""
    cand = (accounts.n_requests.to_numpy() >= config.min_requests) & (p_values <= config.q)
    ids = accounts.account_id.to_numpy()[cand]
    if len(ids) < config.min_accounts:
        return []
    key = keys.reindex(ids).fillna("none").to_numpy()
    labels = _clusters(ids, key, profiles[cand], config.radius)
    p = np.clip(p_values[cand], 1e-300, config.q)
    sizes = np.bincount(labels)
    groups = [np.flatnonzero(labels == c) for c in np.flatnonzero(sizes >= config.min_accounts)]
    out = []
    benign = [(int(row[0]), float(row[1]), float(row[2]) if len(row) > 2 else float("nan"))
              for row in (null or {}).get("clusters", [])]
    max_gain = max([g for _, _, g in benign if np.isfinite(g)], default=1.0)
    for members in groups:
        x = -2.0 * np.log(p[members] / config.q).sum()
        p_cluster = min(1.0, float(stats.chi2.sf(x, 2 * len(members))) * len(groups))
        names = tuple(sorted(ids[members]))
        gain = float("nan")
        if subjects is not None and len(subjects):
            sub = subjects[subjects.account_id.isin(names)]
            per = sub.groupby("account_id").subject.nunique()
            gain = float(sub.subject.nunique() / per.mean()) if len(per) else float("nan")
        beats_null = all(p_cluster < bp for size, bp, _ in benign if size >= len(members))
        complementary = np.isfinite(gain) and gain > max_gain if subjects is not None and len(subjects) else True
        flagged = null is not None and p_cluster <= alpha and beats_null and complementary
        digest = hashlib.sha1("\n".join(names).encode()).hexdigest()[:10]
        out.append(BehaviourCluster(f"cohort-{digest}", names, str(key[members[0]]), p_cluster, gain, flagged))
    return sorted(out, key=lambda c: (not c.flagged, c.p_value))


def behaviour_null(clusters: list[BehaviourCluster], n_accounts: int) -> dict:
    """What the benign reference's own behaviour clusters look like (size and adjusted p-value)."""
    return {"n_accounts": n_accounts, "clusters": [[len(c.accounts), c.p_value, c.coverage_gain] for c in clusters]}
