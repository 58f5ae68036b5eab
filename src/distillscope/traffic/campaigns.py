"""Across accounts: the coordination graph and its clusters (candidate campaigns).

Pairs of accounts sharing rare keys come from :func:`features.coordination_pairs_sql` (run by either
engine). A pair becomes an edge only when it is linked by at least ``min_kinds`` *different* kinds
of evidence (e.g. shared proxy IPs **and** the same template in the same five minutes), each with
at least its minimum number of shared keys: one coincidence (a campus NAT, a popular client
library) never links accounts on its own. Connected components of two or more accounts are
candidate campaigns; whether a campaign is suspicious is decided by scoring its pooled traffic
(:mod:`.scoring`), so a cluster of benign students behind one IP is clustered but not flagged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from distillscope.errors import TrafficError

KINDS = ("ip", "subnet", "agent", "template", "sync")


@dataclass(frozen=True)
class LinkRule:
    """When a pair of accounts is an edge of the coordination graph.

    min_shared: minimum shared keys per kind for that kind to count (ip 1, subnet 2, agent 1,
    template 2, sync 2). min_jaccard: and the shared keys must be at least this share of the
    pair's keys of that kind (0.05; SynchroTrap-style set similarity, so a hyperactive account
    does not link everyone it happens to overlap). min_kinds: how many kinds must count (2). anchor_kinds: at least one
    counting kind must be one of these (ip, subnet, sync): software (user agent) and wording
    (template) are common to unrelated users and never link accounts by themselves.
    """

    min_shared: dict[str, int] = field(default_factory=lambda: {"ip": 1, "subnet": 2, "agent": 1,
                                                                 "template": 2, "sync": 2})
    min_kinds: int = 2
    min_jaccard: float = 0.05
    anchor_kinds: tuple[str, ...] = ("ip", "subnet", "sync")

    def __post_init__(self) -> None:
        unknown = set(self.min_shared) - set(KINDS)
        if unknown:
            raise TrafficError(f"unknown link kinds {sorted(unknown)}", hint=f"kinds: {', '.join(KINDS)}")
        if self.min_kinds < 1:
            raise TrafficError(f"min_kinds={self.min_kinds} must be at least 1", hint="2 is the safe default")


@dataclass(frozen=True)
class Clusters:
    """Candidate campaigns: ``membership`` (account_id, campaign_id) and the accepted ``edges``."""

    membership: pd.DataFrame
    edges: pd.DataFrame

    def members(self, campaign_id: str) -> list[str]:
        return sorted(self.membership.loc[self.membership.campaign_id == campaign_id, "account_id"])

    def membership_table(self) -> pa.Table:
        return pa.Table.from_pandas(self.membership, preserve_index=False)


def link_accounts(pairs: pa.Table | pd.DataFrame, rule: LinkRule = LinkRule()) -> pd.DataFrame:
    """Edges: one row per linked pair with the kinds that link it and their total rarity weight."""
    df = pairs.to_pandas() if isinstance(pairs, pa.Table) else pairs
    empty = pd.DataFrame({"a": pd.Series(dtype=str), "b": pd.Series(dtype=str), "kinds": pd.Series(dtype=str),
                          "weight": pd.Series(dtype=float)})
    if df.empty:
        return empty
    need = df["kind"].map(rule.min_shared).fillna(np.inf)
    jaccard = df["shared"] / (df["n_a"] + df["n_b"] - df["shared"]).clip(lower=1)
    counting = df[(df["shared"] >= need) & (jaccard >= rule.min_jaccard)]
    if counting.empty:
        return empty
    bits = counting["kind"].map({k: 1 << i for i, k in enumerate(KINDS)}).astype(np.int64)
    anchor = counting["kind"].isin(rule.anchor_kinds).astype(np.int64)
    grouped = (counting.assign(bit=bits, anchor=anchor, one=1)
               .groupby(["a", "b"], sort=True)[["bit", "anchor", "one", "weight"]].sum())
    edges = grouped[(grouped.one >= rule.min_kinds) & (grouped.anchor > 0)].reset_index()
    edges["kinds"] = [",".join(k for i, k in enumerate(KINDS) if m >> i & 1) for m in edges.bit]
    return edges[["a", "b", "kinds", "weight"]]


def cluster_accounts(edges: pd.DataFrame) -> Clusters:
    """Connected components of the edge graph (size >= 2), with ids stable across engines."""
    if edges.empty:
        return Clusters(pd.DataFrame(columns=["account_id", "campaign_id"]), edges)
    names = np.array(sorted(set(edges.a) | set(edges.b)))
    index = {n: i for i, n in enumerate(names)}
    a = np.array([index[x] for x in edges.a])
    b = np.array([index[x] for x in edges.b])
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(len(names), len(names)))
    _, labels = connected_components(graph, directed=False)
    frame = pd.DataFrame({"account_id": names, "label": labels})
    ids = {}
    for label, group in frame.groupby("label"):
        digest = hashlib.sha1("\n".join(sorted(group.account_id)).encode()).hexdigest()[:10]
        ids[label] = f"cluster-{digest}"
    frame["campaign_id"] = frame.label.map(ids)
    membership = frame[["account_id", "campaign_id"]].sort_values(["campaign_id", "account_id"])
    return Clusters(membership.reset_index(drop=True), edges)


def link_summary(clusters: Clusters, campaign_id: str) -> dict[str, int]:
    """How the campaign's accounts are linked: number of edges per kind of evidence."""
    members = set(clusters.members(campaign_id))
    inside = clusters.edges[clusters.edges.a.isin(members)]
    counts: dict[str, int] = {}
    for kinds in inside.kinds:
        for kind in kinds.split(","):
            counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items()))
