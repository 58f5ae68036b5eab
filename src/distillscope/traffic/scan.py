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
from distillscope.traffic.features import (SQL_COLUMNS, WINDOW, CoordinationConfig, coordination_keys_sql,
                                           coordination_pairs_sql, entity_features_sql)
from distillscope.traffic.prepare import PrepareConfig, prepare
from distillscope.traffic.schema import LogReport, RequestLogTable, load_log
from distillscope.traffic.cohorts import (BehaviourCluster, CohortConfig, behaviour_clusters, behaviour_null,
                                         fingerprint_sql, fingerprints)
from distillscope.traffic.scoring import (SCORED, Calibration, FeatureEvidence, ScoringConfig, calibrate_scores,
                                          combine_matrix, cross_fitted_z, evidence, group_profile)

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
    window: int = WINDOW
    cohorts: CohortConfig = field(default_factory=CohortConfig)

    def __post_init__(self) -> None:
        if self.window < 10:
            raise TrafficError(f"window={self.window} requests is too small", hint="e.g. 150")


@dataclass(frozen=True)
class Analysis:
    """Engine output for one log: prepared rows, account features, clusters, campaign features."""

    prepared: pa.Table
    account_features: pd.DataFrame
    clusters: Clusters
    campaign_features: pd.DataFrame
    report: LogReport
    distribution: DistributionInputs
    windows: pd.DataFrame = field(default_factory=pd.DataFrame)
    end_users: pd.DataFrame = field(default_factory=pd.DataFrame)
    windows_distribution: pd.DataFrame = field(default_factory=pd.DataFrame)
    end_users_distribution: pd.DataFrame = field(default_factory=pd.DataFrame)
    fingerprints: pd.Series = field(default_factory=lambda: pd.Series(dtype=str))
    subjects: pd.DataFrame = field(default_factory=pd.DataFrame)


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
    p_value: float = 1.0
    window_p: float | None = None
    flagged_window: str | None = None
    end_user_p: float | None = None
    flagged_end_user: str | None = None


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
    p_value: float = 1.0


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
    cohorts: tuple[BehaviourCluster, ...] = ()
    unavailable: dict[str, str] = field(default_factory=dict)

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
        with progress.task(f"features on {eng.name}", total=5) as task:
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
            w = config.window
            win = eng.run(entity_features_sql("window_id", w), {"requests": slim}).to_pandas()
            win = win[win.n_requests == w].reset_index(drop=True)           # complete windows only
            win_dist = eng.run(distribution_sql(rff, config.distribution, "window_id", w), {"requests": slim}).to_pandas()
            fps = fingerprints(eng.run(fingerprint_sql(), {"requests": slim}).to_pandas())
            subj = (slim.select(["account_id", "subject"]).filter(pc.is_valid(slim.column("subject")))
                    .group_by(["account_id", "subject"]).aggregate([]).to_pandas())
            has_users = slim.column("end_user").null_count < slim.num_rows
            users = users_dist = pd.DataFrame()
            if has_users:
                users = eng.run(entity_features_sql("end_user_id"), {"requests": slim}).to_pandas()
                users_dist = eng.run(distribution_sql(rff, config.distribution, "end_user_id"),
                                     {"requests": slim}).to_pandas()
            task.advance()
    finally:
        if owned:
            eng.close()
    return Analysis(prepared, acc, clusters, camp, log.report, DistributionInputs(acc_dist, camp_dist), win, users,
                    win_dist, users_dist, fps, subj)


def calibrate(reference: RequestLogTable | str | Path | pa.Table, engine: str | Engine = "duckdb",
              config: ScanConfig = ScanConfig(), *, mapping: Mapping[str, str] | None = None,
              progress: Progress | None = None) -> Calibration:
    """Calibrate thresholds on a log of benign traffic only (never on the log being scanned)."""
    rff = RandomFeatures.draw(config.distribution)
    a = analyse(reference, engine, config, mapping=mapping, progress=progress, features=rff)
    source = reference.report.source if isinstance(reference, RequestLogTable) else str(reference)[:200]
    return calibrate_analysis(a, config, rff, source=source)


def calibrate_analysis(a: Analysis, config: ScanConfig, rff: RandomFeatures, *, source: str = "reference",
                       dist: DistributionReference | None = None) -> Calibration:
    """The calibration of an analysed benign log (``dist``: a distribution reference already fitted on it)."""
    dist = dist or fit_reference(a.distribution.accounts, config.distribution, rff)
    acc = attach(a.account_features, a.distribution.accounts, dist, "account_id", leave_one_out=True)
    camp = attach(a.campaign_features, a.distribution.campaigns, dist, "campaign_id")
    win = attach(a.windows, a.windows_distribution, dist, "window_id") if len(a.windows) else None
    cal = calibrate_scores(acc, camp, config.scoring, source=source, distribution=dist, window_features=win,
                           content_model=config.prepare.content.id)
    # the null of behaviour clusters: the same procedure on the benign accounts' cross-fitted scores
    z = cross_fitted_z(acc.reset_index(drop=True), config.scoring).to_numpy(dtype=float)
    p = cal.p_values(combine_matrix(z, config.scoring))
    benign = behaviour_clusters(acc.reset_index(drop=True), group_profile(z, config.scoring), p, a.fingerprints,
                                a.subjects, config.cohorts, config.scoring.alpha)
    return replace(cal, behaviour_null=behaviour_null(benign, len(acc)))


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


def _campaigns(a: Analysis, cal: Calibration, k: int) -> list[CampaignFinding]:
    camp = a.campaign_features.reset_index(drop=True)
    if camp.empty:
        return []
    z = cal.z(camp)
    scores = cal.score(camp)
    pv = cal.p_values(scores)
    out = []
    for i, row in camp.iterrows():
        members = tuple(a.clusters.members(row.campaign_id))
        flagged = bool(pv[i] <= cal.config.alpha and scores[i] > cal.campaign_threshold)
        ex = _examples(a.prepared, list(members[:k]), 1) if flagged else {}
        out.append(CampaignFinding(row.campaign_id, members, int(row.n_requests), float(scores[i]), flagged,
                                   link_summary(a.clusters, row.campaign_id), evidence(row, z.loc[i], cal),
                                   tuple(e for v in ex.values() for e in v), float(pv[i])))
    return sorted(out, key=lambda c: (not c.flagged, -c.score, c.campaign_id))


def _sub_entities(frame: pd.DataFrame, key: str, sep: str, cal: Calibration, window: bool
                  ) -> pd.DataFrame:
    """Per account, the strongest of its windows or end users: Bonferroni-adjusted p and which one."""
    if frame.empty:
        return pd.DataFrame(columns=["account_id", "p_adj", "entity"])
    scores = cal.score(frame)
    tail = cal.window_tail_ if window and cal.window_tail_ is not None else cal.tail_
    p = tail.p_values(scores)
    acct = frame[key].str.rsplit(sep, n=1).str[0]
    df = pd.DataFrame({"account_id": acct, "p": p, "entity": frame[key]})
    df["n_tests"] = df.groupby("account_id").p.transform("size")
    df["p_adj"] = (df.p * df.n_tests).clip(upper=1.0)
    return df.sort_values(["p_adj", "entity"]).groupby("account_id", sort=False).head(1)


def _cohorts(a: Analysis, cal: Calibration, config: CohortConfig) -> list[BehaviourCluster]:
    acc = a.account_features.reset_index(drop=True)
    z = cal.z(acc).to_numpy(dtype=float)
    p = cal.p_values(combine_matrix(z, cal.config))
    return behaviour_clusters(acc, group_profile(z, cal.config), p, a.fingerprints, a.subjects, config,
                              cal.config.alpha, cal.behaviour_null or {"clusters": []})


def _accounts(a: Analysis, cal: Calibration, campaigns: list[CampaignFinding], k: int,
              cohorts: list[BehaviourCluster] = ()) -> list[AccountFinding]:
    acc = a.account_features.reset_index(drop=True)
    z = cal.z(acc)
    scores = cal.score(acc)
    pv = cal.p_values(scores)
    alpha = cal.config.alpha
    cohort_of = {m: c.cluster_id for c in cohorts if c.flagged for m in c.accounts}
    campaign_of = dict(zip(a.clusters.membership.account_id, a.clusters.membership.campaign_id))
    flagged_campaigns = {c.campaign_id for c in campaigns if c.flagged}
    enough = acc.n_requests.to_numpy() >= cal.config.min_requests
    own = (pv <= alpha) & enough
    win = _sub_entities(a.windows, "window_id", "#w", cal, True).set_index("account_id")
    users = _sub_entities(a.end_users, "end_user_id", "/", cal, False).set_index("account_id")
    win_p = acc.account_id.map(win.p_adj).to_numpy(dtype=float)
    user_p = acc.account_id.map(users.p_adj).to_numpy(dtype=float)
    by_window = np.nan_to_num(win_p, nan=1.0) <= alpha
    by_user = (np.nan_to_num(user_p, nan=1.0) <= alpha) & enough
    via = acc.account_id.map(lambda x: campaign_of.get(x) in flagged_campaigns).to_numpy(dtype=bool)
    via_cohort = acc.account_id.isin(cohort_of).to_numpy()
    flagged_ids = list(acc.account_id[own | by_window | by_user | via | via_cohort])
    ex = _examples(a.prepared, flagged_ids, k)
    out = []
    for i, row in acc.iterrows():
        reason = ("account" if own[i] else "end_user" if by_user[i] else "window" if by_window[i]
                  else "campaign" if via[i] else "cohort" if via_cohort[i] else "")
        aid = row.account_id
        out.append(AccountFinding(
            aid, int(row.n_requests), float(scores[i]), bool(reason), reason, campaign_of.get(aid, cohort_of.get(aid)),
            evidence(row, z.loc[i], cal) if reason else (), ex.get(aid, ()), float(pv[i]),
            None if np.isnan(win_p[i]) else float(win_p[i]), win.entity.get(aid) if by_window[i] else None,
            None if np.isnan(user_p[i]) else float(user_p[i]), users.entity.get(aid) if by_user[i] else None))
    return sorted(out, key=lambda f: (not f.flagged, -f.score, f.account_id))


def scan(log: RequestLogTable | str | Path | pa.Table, calibration: Calibration, engine: str | Engine = "duckdb",
         config: ScanConfig = ScanConfig(), *, mapping: Mapping[str, str] | None = None,
         progress: Progress | None = None) -> ScanResult:
    """Rank the accounts and campaigns of a log against a benign calibration."""
    dist = calibration.distribution_reference
    if dist is None:
        raise TrafficError("the calibration has no distribution-test reference",
                           hint="re-run distillscope traffic calibrate on benign traffic")
    if calibration.content_model and calibration.content_model != config.prepare.content.id:
        raise TrafficError(f"the calibration was made with content model {calibration.content_model}, this scan "
                           f"uses {config.prepare.content.id}", hint="re-run distillscope traffic calibrate")
    config = replace(config, scoring=calibration.config, distribution=dist.config)   # scored as calibrated
    t0 = time.perf_counter()
    eng_name = engine if isinstance(engine, str) else engine.name
    a = attach_distribution(analyse(log, engine, config, mapping=mapping, progress=progress, features=dist.features),
                            dist)
    return score_analysis(a, calibration, config, seconds_before=time.perf_counter() - t0, engine=eng_name)


def attach_distribution(a: Analysis, dist: DistributionReference) -> Analysis:
    """The analysis with the distribution test's statistic attached to every entity table."""
    return replace(a, account_features=attach(a.account_features, a.distribution.accounts, dist, "account_id"),
                campaign_features=attach(a.campaign_features, a.distribution.campaigns, dist, "campaign_id"),
                windows=attach(a.windows, a.windows_distribution, dist, "window_id") if len(a.windows) else a.windows,
                end_users=(attach(a.end_users, a.end_users_distribution, dist, "end_user_id")
                           if len(a.end_users) else a.end_users))


def score_analysis(a: Analysis, calibration: Calibration, config: ScanConfig = ScanConfig(), *,
                   seconds_before: float = 0.0, engine: str = "duckdb") -> ScanResult:
    """Score an analysed log (distribution statistics attached) against a calibration: accounts, their
    windows and end users, campaigns and behaviour cohorts. :func:`scan` = :func:`analyse` + this; a
    benchmark re-scores one analysis under several calibrations without re-running the SQL."""
    t0 = time.perf_counter()
    if a.account_features.empty:
        raise TrafficError("the log has no authenticated requests to score",
                           hint="check that account_id is filled (map your user column with --map)")
    campaigns = _campaigns(a, calibration, config.examples)
    cohorts = _cohorts(a, calibration, config.cohorts)
    accounts = _accounts(a, calibration, campaigns, config.examples, cohorts)
    seconds = seconds_before + time.perf_counter() - t0
    logger.info("scan on %s: %d rows, %d accounts (%d flagged), %d campaigns (%d flagged), %d cohorts (%d flagged) "
                "in %.1fs", engine, a.report.n_rows, len(accounts), sum(x.flagged for x in accounts), len(campaigns),
                sum(c.flagged for c in campaigns), len(cohorts), sum(c.flagged for c in cohorts), seconds)
    return ScanResult(engine, tuple(accounts), tuple(campaigns), a.account_features, a.report,
                      calibration.account_threshold, calibration.campaign_threshold, seconds, tuple(cohorts),
                      unavailable_features(a.report, a.prepared))


#: The log columns each scored feature needs (besides request_id, ts and account_id).
FEATURE_INPUTS: dict[str, tuple[str, ...]] = {
    "cot_share": ("prompt",), "datagen_share": ("prompt",), "task_entropy": ("prompt",),
    "subject_entropy": ("prompt",), "mean_max_tokens": ("max_tokens",), "mean_completion_tokens": ("completion_tokens",),
    "out_in_ratio": ("completion_tokens", "prompt_tokens"), "capped_share": ("max_tokens", "completion_tokens"),
    "logprob_share": ("logprobs",), "mean_top_logprobs": ("logprobs",), "harvest_share": ("logprobs", "max_tokens"),
    "logprob_breadth": ("logprobs", "prompt"), "logit_bias_share": ("logit_bias",), "hour_entropy": (),
    "requests_per_day": (), "n_days_active": (), "rejected_share": ("status",), "ip_rotation": ("client_ip",),
    "gap_cv": (), "mmd": ("prompt", "completion_tokens", "prompt_tokens"),
}
#: The other analyses and the columns they need.
ANALYSIS_INPUTS: dict[str, tuple[str, ...]] = {
    "end-user test": ("user",), "infrastructure links (coordination graph)": ("client_ip",),
    "template links": ("prompt",), "complementary topic coverage (cohorts)": ("prompt",),
}


def unavailable_features(report: LogReport, prepared: pa.Table) -> dict[str, str]:
    """Features and analyses that cannot run on this log, with the columns they lack (absent or all null)."""
    empty = set(report.missing_columns) | {c for c in ("prompt", "max_tokens", "completion_tokens", "prompt_tokens",
                                                       "logprobs", "logit_bias", "status", "client_ip", "user")
                                           if c in prepared.column_names
                                           and prepared.column(c).null_count == prepared.num_rows}
    out = {}
    for name, cols in {**FEATURE_INPUTS, **ANALYSIS_INPUTS}.items():
        lacking = [c for c in cols if c in empty]
        if lacking:
            out[name] = "no " + ", ".join(lacking)
    return out


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
        "cohorts": [asdict(c) for c in result.cohorts],
        "unavailable_features": result.unavailable,
        "accounts": [asdict(a) for a in accounts],
    }
