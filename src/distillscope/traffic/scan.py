"""Batch forensics: load a request log, compute features on an engine, cluster, score, explain.

``calibrate(benign_log)`` builds the benign reference; ``scan(log, calibration)`` ranks accounts
and campaigns. Every flag carries its evidence: the features that drove the score (value, benign
median, tail probability), the accounts of its campaign and how they are linked, and example
requests.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from distillscope.errors import TrafficError
from distillscope.progress import Progress, ensure_progress
from distillscope.traffic.campaigns import Clusters, LinkRule, cluster_accounts, link_accounts, link_summary
from distillscope.traffic.distribution import (DistributionConfig, DistributionInputs, DistributionReference,
                                               RandomFeatures, attach, distribution_sql, fit_reference)
from distillscope.traffic.engines import Engine, make_engine
from distillscope.traffic.features import (SQL_COLUMNS, CoordinationConfig, coordination_keys_sql,
                                           coordination_pairs_sql, entity_features_sql)
from distillscope.traffic.prepare import PrepareConfig, prepare
from distillscope.traffic.schema import LogReport, RequestLogTable, load_log
from distillscope.traffic.scoring import (Calibration, FeatureEvidence, ScoringConfig, calibrate_scores,
                                          evidence, feature_pvalues, score, _stratum)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScanConfig:
    """All algorithm settings of a scan (each part documented in its own module)."""

    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    coordination: CoordinationConfig = field(default_factory=CoordinationConfig)
    link: LinkRule = field(default_factory=LinkRule)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    examples: int = 3
    distribution: DistributionConfig = field(default_factory=DistributionConfig)


@dataclass(frozen=True)
class Analysis:
    """Engine output for one log: prepared rows, account features, clusters, campaign features."""

    prepared: pa.Table
    account_features: pd.DataFrame
    clusters: Clusters
    campaign_features: pd.DataFrame
    report: LogReport
    distribution: DistributionInputs


@dataclass(frozen=True)
class ExampleRequest:
    request_id: str
    ts: str
    account_id: str
    prompt: str | None
    max_tokens: int | None
    logprobs: int | None
    cot: bool | None


@dataclass(frozen=True)
class AccountFinding:
    """One account: score, whether it is flagged and why (``account`` or ``campaign``), evidence."""

    account_id: str
    n_requests: int
    score: float
    flagged: bool
    reason: str
    campaign_id: str | None
    evidence: tuple[FeatureEvidence, ...]
    examples: tuple[ExampleRequest, ...] = ()


@dataclass(frozen=True)
class CampaignFinding:
    """A cluster of linked accounts scored on its pooled traffic."""

    campaign_id: str
    accounts: tuple[str, ...]
    n_requests: int
    score: float
    flagged: bool
    links: dict[str, int]
    evidence: tuple[FeatureEvidence, ...]
    examples: tuple[ExampleRequest, ...] = ()


@dataclass(frozen=True)
class ScanResult:
    """Ranked accounts and campaigns (flagged first, then by score)."""

    engine: str
    accounts: tuple[AccountFinding, ...]
    campaigns: tuple[CampaignFinding, ...]
    account_features: pd.DataFrame = field(repr=False)
    report: LogReport = field(repr=False)
    account_threshold: float = 0.0
    campaign_threshold: float = 0.0
    seconds: float = 0.0

    @property
    def flagged_accounts(self) -> tuple[AccountFinding, ...]:
        return tuple(a for a in self.accounts if a.flagged)

    @property
    def flagged_campaigns(self) -> tuple[CampaignFinding, ...]:
        return tuple(c for c in self.campaigns if c.flagged)


def _as_engine(engine: str | Engine) -> tuple[Engine, bool]:
    return (make_engine(engine), True) if isinstance(engine, str) else (engine, False)


def analyse(log: RequestLogTable | str | Path | pa.Table, engine: str | Engine = "duckdb",
            config: ScanConfig = ScanConfig(), *, mapping: Mapping[str, str] | None = None,
            progress: Progress | None = None, features: RandomFeatures | None = None) -> Analysis:
    """Everything the engines compute for one log (shared by :func:`scan` and :func:`calibrate`).

    ``features``: the distribution test's random features (a calibration's; drawn from
    ``config.distribution`` when not given)."""
    progress = ensure_progress(progress)
    if not isinstance(log, RequestLogTable):
        log = load_log(log, mapping=mapping)
    eng, owned = _as_engine(engine)
    try:
        prepared = prepare(log, config.prepare, progress=progress)
        slim = prepared.select(list(SQL_COLUMNS))
        rff = features or RandomFeatures.draw(config.distribution)
        with progress.task(f"features on {eng.name}", total=4) as task:
            acc = eng.run(entity_features_sql("account_id"), {"requests": slim}).to_pandas()
            task.advance()
            rare = eng.run(coordination_keys_sql(config.coordination), {"requests": slim})
            pairs = eng.run(coordination_pairs_sql(), {"rare_keys": rare})
            clusters = cluster_accounts(link_accounts(pairs, config.link))
            task.advance()
            acc_dist = eng.run(distribution_sql(rff, config.distribution), {"requests": slim}).to_pandas()
            task.advance()
            if len(clusters.membership):
                tables = {"requests": slim, "membership": clusters.membership_table()}
                camp = eng.run(entity_features_sql("campaign_id"), tables).to_pandas()
                camp_dist = eng.run(distribution_sql(rff, config.distribution, "campaign_id"), tables).to_pandas()
            else:
                camp = pd.DataFrame(columns=["campaign_id", *acc.columns[1:]])
                camp_dist = pd.DataFrame(columns=["campaign_id", *acc_dist.columns[1:]])
            task.advance()
    finally:
        if owned:
            eng.close()
    return Analysis(prepared, acc, clusters, camp, log.report, DistributionInputs(acc_dist, camp_dist))


def calibrate(reference: RequestLogTable | str | Path | pa.Table, engine: str | Engine = "duckdb",
              config: ScanConfig = ScanConfig(), *, mapping: Mapping[str, str] | None = None,
              progress: Progress | None = None) -> Calibration:
    """Calibrate thresholds on a log of benign traffic only (never on the log being scanned)."""
    rff = RandomFeatures.draw(config.distribution)
    a = analyse(reference, engine, config, mapping=mapping, progress=progress, features=rff)
    source = reference.report.source if isinstance(reference, RequestLogTable) else str(reference)[:200]
    dist = fit_reference(a.distribution.accounts, config.distribution, rff)
    acc = attach(a.account_features, a.distribution.accounts, dist, "account_id", leave_one_out=True)
    camp = attach(a.campaign_features, a.distribution.campaigns, dist, "campaign_id")
    return calibrate_scores(acc, camp, config.scoring, source=source, distribution=dist)


def _examples(prepared: pa.Table, accounts: list[str], k: int) -> dict[str, tuple[ExampleRequest, ...]]:
    if not accounts or k <= 0:
        return {}
    sub = prepared.filter(pc.is_in(prepared.column("account_id"), pa.array(accounts)))
    df = sub.select(["request_id", "ts", "account_id", "prompt", "max_tokens", "logprobs", "cot"]).to_pandas()
    df["rank_cot"] = df.cot.fillna(0)
    df = df.sort_values(["account_id", "rank_cot", "max_tokens", "request_id"], ascending=[True, False, False, True])
    out: dict[str, tuple[ExampleRequest, ...]] = {}
    for acct, group in df.groupby("account_id"):
        out[acct] = tuple(ExampleRequest(
            r.request_id, pd.Timestamp(r.ts).isoformat(), acct, None if pd.isna(r.prompt) else str(r.prompt)[:300],
            None if pd.isna(r.max_tokens) else int(r.max_tokens), None if pd.isna(r.logprobs) else int(r.logprobs),
            None if pd.isna(r.cot) else bool(r.cot)) for r in group.head(k).itertuples())
    return out


def _ref_for(n: int, calibration: Calibration) -> dict[str, list[float]]:
    return calibration.reference[int(_stratum(np.array([n]), calibration.config.strata)[0])]


def _campaigns(a: Analysis, cal: Calibration, k: int) -> list[CampaignFinding]:
    camp = a.campaign_features.reset_index(drop=True)
    if camp.empty:
        return []
    scores = score(camp, cal.reference, cal.config)
    pv = feature_pvalues(camp, cal.reference, cal.config)
    out = []
    for i, row in camp.iterrows():
        members = tuple(a.clusters.members(row.campaign_id))
        flagged = bool(scores[i] > cal.campaign_threshold)
        ex = _examples(a.prepared, list(members[:k]), 1) if flagged else {}
        out.append(CampaignFinding(row.campaign_id, members, int(row.n_requests), float(scores[i]), flagged,
                                   link_summary(a.clusters, row.campaign_id),
                                   evidence(row, pv.loc[i], _ref_for(int(row.n_requests), cal),
                                            distribution=cal.distribution_reference),
                                   tuple(e for v in ex.values() for e in v)))
    return sorted(out, key=lambda c: (not c.flagged, -c.score, c.campaign_id))


def _accounts(a: Analysis, cal: Calibration, campaigns: list[CampaignFinding], k: int) -> list[AccountFinding]:
    acc = a.account_features.reset_index(drop=True)
    scores = score(acc, cal.reference, cal.config)
    pv = feature_pvalues(acc, cal.reference, cal.config)
    campaign_of = dict(zip(a.clusters.membership.account_id, a.clusters.membership.campaign_id))
    flagged_campaigns = {c.campaign_id for c in campaigns if c.flagged}
    own = (scores > cal.account_threshold) & (acc.n_requests.to_numpy() >= cal.config.min_requests)
    via = acc.account_id.map(lambda x: campaign_of.get(x) in flagged_campaigns).to_numpy(dtype=bool)
    flagged_ids = list(acc.account_id[own | via])
    ex = _examples(a.prepared, flagged_ids, k)
    out = []
    for i, row in acc.iterrows():
        reason = "account" if own[i] else ("campaign" if via[i] else "")
        out.append(AccountFinding(row.account_id, int(row.n_requests), float(scores[i]), bool(reason), reason,
                                  campaign_of.get(row.account_id),
                                  evidence(row, pv.loc[i], _ref_for(int(row.n_requests), cal),
                                           distribution=cal.distribution_reference) if reason else (),
                                  ex.get(row.account_id, ())))
    return sorted(out, key=lambda f: (not f.flagged, -f.score, f.account_id))


def scan(log: RequestLogTable | str | Path | pa.Table, calibration: Calibration, engine: str | Engine = "duckdb",
         config: ScanConfig = ScanConfig(), *, mapping: Mapping[str, str] | None = None,
         progress: Progress | None = None) -> ScanResult:
    """Rank the accounts and campaigns of a log against a benign calibration."""
    dist = calibration.distribution_reference
    if dist is None:
        raise TrafficError("the calibration has no distribution-test reference",
                           hint="re-run distillscope traffic calibrate on benign traffic")
    config = replace(config, scoring=calibration.config, distribution=dist.config)   # scored as calibrated
    t0 = time.perf_counter()
    eng_name = engine if isinstance(engine, str) else engine.name
    a = analyse(log, engine, config, mapping=mapping, progress=progress, features=dist.features)
    a = Analysis(a.prepared, attach(a.account_features, a.distribution.accounts, dist, "account_id"), a.clusters,
                 attach(a.campaign_features, a.distribution.campaigns, dist, "campaign_id"), a.report, a.distribution)
    if a.account_features.empty:
        raise TrafficError("the log has no authenticated requests to score",
                           hint="check that account_id is filled (map your user column with --map)")
    campaigns = _campaigns(a, calibration, config.examples)
    accounts = _accounts(a, calibration, campaigns, config.examples)
    seconds = time.perf_counter() - t0
    logger.info("scan on %s: %d rows, %d accounts (%d flagged), %d campaigns (%d flagged) in %.1fs", eng_name,
                a.report.n_rows, len(accounts), sum(x.flagged for x in accounts), len(campaigns),
                sum(c.flagged for c in campaigns), seconds)
    return ScanResult(eng_name, tuple(accounts), tuple(campaigns), a.account_features, a.report,
                      calibration.account_threshold, calibration.campaign_threshold, seconds)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def result_to_dict(result: ScanResult, *, top: int | None = None) -> dict[str, Any]:
    """A JSON-ready view of a scan (flagged entries first; ``top`` limits unflagged accounts)."""
    from dataclasses import asdict

    accounts = [a for a in result.accounts if a.flagged]
    rest = [a for a in result.accounts if not a.flagged]
    accounts += rest[: top if top is not None else len(rest)]
    return {
        "engine": result.engine, "created": now_iso(), "seconds": round(result.seconds, 3),
        "thresholds": {"account": result.account_threshold, "campaign": result.campaign_threshold},
        "log": asdict(result.report), "n_accounts": len(result.accounts),
        "flagged_accounts": len(result.flagged_accounts), "flagged_campaigns": len(result.flagged_campaigns),
        "campaigns": [asdict(c) for c in result.campaigns],
        "accounts": [asdict(a) for a in accounts],
    }
