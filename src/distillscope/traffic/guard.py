"""The real-time guard: incremental account and cluster scores and an escalation policy.

:class:`TrafficGuard` implements the gateway's ``RequestGuard`` protocol. For every logged request
it adds the request to additive per-account totals (see :mod:`.guard_state`), recomputes the
account's features -- the same definitions as the batch SQL, restricted to those that need no
whole-log text statistics (:data:`ONLINE_FEATURES`) -- and scores them against the benign
:class:`~distillscope.traffic.scoring.Calibration`. Accounts that share rare keys (IPs, subnets,
exact masked templates, a template in the same five minutes) are linked with the batch
:class:`~distillscope.traffic.campaigns.LinkRule` and merged into clusters whose pooled totals are
scored too, so a hydra whose accounts each stay below the account threshold is still caught.

The policy escalates ``flag -> throttled -> suspended -> revoked`` as score and evidence grow;
``flag`` is recorded in :attr:`TrafficGuard.events` only, the others become
``EnforcementAction`` objects that the gateway applies and audits with their evidence.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Sequence

import numpy as np

from distillscope.errors import TrafficError
from distillscope.traffic.campaigns import LinkRule
from distillscope.traffic.features import IN_SESSION_GAP_S, SCORED_FEATURES
from distillscope.traffic.guard_state import GuardState, MemoryGuardState
from distillscope.traffic.prepare import COT_PATTERN
from distillscope.traffic.scoring import Calibration, FeatureEvidence, _stratum, _tail_p
from distillscope.traffic.templates import last_user_text, mask

logger = logging.getLogger(__name__)

ONLINE_FEATURES: tuple[str, ...] = tuple(f for f in SCORED_FEATURES if f not in ("topic_ratio", "topic_spread"))
LEVELS = ("flag", "throttled", "suspended", "revoked")


@dataclass(frozen=True)
class Rung:
    """One step of the ladder: reached when score >= factor x threshold with >= min_requests."""

    level: str
    factor: float
    min_requests: int


@dataclass(frozen=True)
class GuardPolicy:
    """The escalation policy.

    account: rungs for single accounts (flag at 1x threshold after 5 requests, throttle at 1.75x
    after 20, suspend at 2x after 50, revoke at 2.25x after 100 -- PRADA-like evidence before
    revoking; a lone account needs a wide margin: an evaluation harness asking for reasoning and
    logprobs reached 1.6x). cluster: rungs for clusters of linked accounts on pooled requests
    (1x/1.25x/1.25x/1.25x after 30/60/120/200). cluster_min_accounts: a
    cluster needs at least this many accounts to be scored (3). eval_every: score a cluster on
    every n-th request of its accounts (5). max_key_accounts: keys shared by more accounts are
    too common to link (200). sync_bucket_s: synchronisation bucket (300). actor: audit actor.
    """

    account: tuple[Rung, ...] = (Rung("flag", 1.0, 5), Rung("throttled", 1.75, 20), Rung("suspended", 2.0, 50),
                                 Rung("revoked", 2.25, 100))
    cluster: tuple[Rung, ...] = (Rung("flag", 1.0, 30), Rung("throttled", 1.25, 60), Rung("suspended", 1.25, 120),
                                 Rung("revoked", 1.25, 200))
    cluster_min_accounts: int = 3
    eval_every: int = 5
    max_key_accounts: int = 200
    sync_bucket_s: int = 300
    link: LinkRule = field(default_factory=LinkRule)
    actor: str = "traffic-guard"

    def __post_init__(self) -> None:
        for rung in (*self.account, *self.cluster):
            if rung.level not in LEVELS:
                raise TrafficError(f"policy level {rung.level!r} is unknown", hint=f"levels: {', '.join(LEVELS)}")
            if rung.factor <= 0 or rung.min_requests < 1:
                raise TrafficError(f"policy rung {rung} needs factor > 0 and min_requests >= 1")


@dataclass(frozen=True)
class GuardEvent:
    """One decision of the guard (also for ``flag``, which changes no state)."""

    ts: str
    target: str
    scope: str
    level: str
    score: float
    threshold: float
    n_requests: int
    request_id: str


def _get(record: Any, name: str, default: Any = None) -> Any:
    return record.get(name, default) if isinstance(record, dict) else getattr(record, name, default)


def _epoch(ts: Any) -> float:
    if isinstance(ts, datetime):
        return (ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)).timestamp()
    return float(ts)


def features_from_totals(t: dict[str, float], n_ips: int, n_days: int) -> dict[str, float]:
    """The online features from additive totals (same definitions as the batch SQL)."""
    n = t.get("n", 0.0)
    nan = float("nan")

    def ratio(a: str, b: str) -> float:
        return t.get(a, 0.0) / t[b] if t.get(b) else nan

    hours = np.array([t.get(f"h{i}", 0.0) for i in range(24)])
    p = hours[hours > 0] / max(hours.sum(), 1.0)
    ng, sg, sg2 = t.get("n_gaps", 0.0), t.get("sum_gap", 0.0), t.get("sum_gap2", 0.0)
    mean_gap = sg / ng if ng else 0.0
    var = (sg2 - sg * sg / ng) / (ng - 1) if ng >= 2 else 0.0
    return {
        "cot_share": ratio("n_cot", "n_prompt"), "mean_max_tokens": ratio("sum_mt", "n_mt"),
        "mean_completion_tokens": ratio("sum_ct", "n_ok"), "out_in_ratio": ratio("sum_ct", "sum_pt"),
        "logprob_share": ratio("n_lp", "n"), "logit_bias_share": ratio("n_lb", "n"),
        "hour_entropy": float(-(p * np.log(p)).sum()) if n >= 2 else nan,
        "requests_per_day": n / n_days if n_days else nan, "rejected_share": ratio("n_rej", "n"),
        "ip_rotation": n_ips / n if n >= 2 and n_ips else nan,
        "gap_cv": math.sqrt(max(var, 0.0)) / mean_gap if ng >= 3 and mean_gap > 0 else nan,
    }


class TrafficGuard:
    """Real-time scores and enforcement (a gateway ``RequestGuard``).

    calibration: the benign calibration from :func:`distillscope.traffic.calibrate`.
    policy: the escalation ladder. state: :class:`MemoryGuardState` (one worker, default) or
    :class:`RedisGuardState` (shared by workers; see :func:`make_guard_state`).
    """

    def __init__(self, calibration: Calibration, policy: GuardPolicy | None = None,
                 state: GuardState | None = None) -> None:
        self.calibration = calibration
        self.policy = policy or GuardPolicy()
        self.state = state or MemoryGuardState()
        self.threshold_ = calibration.threshold_for(ONLINE_FEATURES)
        ratio = calibration.campaign_threshold / calibration.account_threshold if calibration.account_threshold else 1
        self.cluster_threshold_ = self.threshold_ * max(1.0, ratio)
        self.events: list[GuardEvent] = []
        self._refs = {s: {f: np.asarray(v, dtype=float) for f, v in ref.items()}
                      for s, ref in calibration.reference.items()}
        self._medians = {s: {f: float(np.median(v)) if len(v) else float("nan") for f, v in ref.items()}
                         for s, ref in self._refs.items()}

    # --- scoring ---------------------------------------------------------------------------------
    def _score(self, feats: dict[str, float], n: int) -> tuple[float, tuple[FeatureEvidence, ...]]:
        stratum = int(_stratum(np.array([n]), self.calibration.config.strata)[0])
        ref, medians = self._refs[stratum], self._medians[stratum]
        total, ev = 0.0, []
        for f in ONLINE_FEATURES:
            p = float(_tail_p(np.array([feats[f]], dtype=float), ref[f], SCORED_FEATURES[f][0])[0])
            total += -math.log10(p)
            if p < 0.05:
                ev.append(FeatureEvidence(f, float(feats[f]), medians[f], p, SCORED_FEATURES[f][1]))
        return total, tuple(sorted(ev, key=lambda e: e.p_value)[:5])

    # --- the RequestGuard protocol ---------------------------------------------------------------
    def observe(self, record: Any) -> Sequence[Any]:
        account = _get(record, "account_id")
        if not account:
            return ()
        ts = _epoch(_get(record, "ts"))
        before = self.state.totals(account)
        totals, sets, template = self._deltas(record, ts, before)
        self.state.add(account, totals, sets)
        self._link(account, record, ts, template)
        actions = list(self._judge_account(account, record, ts))
        actions += self._judge_cluster(account, record, ts)
        return actions

    def _deltas(self, record: Any, ts: float, before: dict[str, float]) -> tuple[dict, dict, str | None]:
        status = _get(record, "status") or 200
        ok = status < 400
        prompt = _get(record, "prompt")
        ask = last_user_text(prompt) if prompt else None
        max_tokens = _get(record, "max_tokens")
        d: dict[str, float] = {"n": 1, "n_ok": int(ok), "n_rej": int(not ok), f"h{int(ts // 3600) % 24}": 1,
                               "n_lp": int((_get(record, "logprobs") or 0) > 0), "n_lb": int(bool(_get(record, "logit_bias")))}
        if ok:
            d.update(sum_ct=_get(record, "completion_tokens") or 0, sum_pt=_get(record, "prompt_tokens") or 0)
        if max_tokens:
            d.update(n_mt=1, sum_mt=max_tokens)
        if ask is not None:
            d.update(n_prompt=1, n_cot=int(bool(COT_PATTERN.search(ask))))
        last = before.get("last_ts")
        d["last_ts"] = ts - (last or 0.0)
        if last is not None and 0 <= ts - last < IN_SESSION_GAP_S:
            gap = ts - last
            d.update(n_gaps=1, sum_gap=gap, sum_gap2=gap * gap)
        sets = {"days": str(int(ts // 86400))}
        if _get(record, "client_ip"):
            sets["ips"] = _get(record, "client_ip")
        template = hashlib.blake2b(mask(ask).encode(), digest_size=8).hexdigest() if ask else None
        return d, sets, template

    def _link(self, account: str, record: Any, ts: float, template: str | None) -> None:
        ip = _get(record, "client_ip")
        keys = {}
        if ip:
            keys["ip"] = ip
            keys["subnet"] = ip.rsplit(".", 1)[0] if "." in ip else ":".join(ip.split(":")[:3])
        if template:
            keys["template"] = template
            keys["sync"] = f"{int(ts // self.policy.sync_bucket_s)}/{template}"
        rule = self.policy.link
        for kind, value in keys.items():
            others = self.state.join_key(f"{kind}:{value}", account, self.policy.max_key_accounts)
            if others is None:
                continue
            self.state.add(account, {f"k_{kind}": 1}, {})
            for other in others:
                self.state.bump_pair(account, other, kind)
                if self._linked(account, other, rule):
                    self.state.union(account, other)

    def _linked(self, a: str, b: str, rule: LinkRule) -> bool:
        ta, tb = self.state.totals(a), self.state.totals(b)
        kinds = []
        for kind, need in rule.min_shared.items():
            shared = self.state.pair(a, b, kind)
            union = ta.get(f"k_{kind}", 0) + tb.get(f"k_{kind}", 0) - shared
            if shared >= need and shared / max(union, 1) >= rule.min_jaccard:
                kinds.append(kind)
        return len(kinds) >= rule.min_kinds and any(k in rule.anchor_kinds for k in kinds)

    def _decide(self, rungs: tuple[Rung, ...], score: float, threshold: float, n: int) -> int:
        level = 0
        for rung in rungs:
            if score >= rung.factor * threshold and n >= rung.min_requests:
                level = max(level, LEVELS.index(rung.level) + 1)
        return level

    def _record(self, target: str, scope: str, level: int, score: float, threshold: float, n: int,
                record: Any, ts: float) -> None:
        event = GuardEvent(datetime.fromtimestamp(ts, timezone.utc).isoformat(), target, scope, LEVELS[level - 1],
                           round(score, 3), round(threshold, 3), n, str(_get(record, "request_id")))
        self.events.append(event)
        logger.info("traffic guard: %s %s -> %s (score %.2f, threshold %.2f, %d requests)", scope, target,
                    event.level, score, threshold, n)

    def _actions(self, targets: list[str], level: int, reason: str, evidence: dict) -> list[Any]:
        if LEVELS[level - 1] == "flag":
            return []
        from distillscope.gateway.enforcement import EnforcementAction

        return [EnforcementAction("account", t, LEVELS[level - 1], reason, self.policy.actor, evidence)
                for t in targets]

    def _judge_account(self, account: str, record: Any, ts: float) -> list[Any]:
        t = self.state.totals(account)
        n = int(t.get("n", 0))
        feats = features_from_totals(t, self.state.set_size(account, "ips"), self.state.set_size(account, "days"))
        score, ev = self._score(feats, n)
        level = self._decide(self.policy.account, score, self.threshold_, n)
        if not level or not self.state.raise_level(f"enforced:{account}", level):
            return []
        self._record(account, "account", level, score, self.threshold_, n, record, ts)
        evidence = {"scope": "account", "score": round(score, 3), "threshold": round(self.threshold_, 3),
                    "n_requests": n, "features": [e.__dict__ for e in ev],
                    "example_request_id": str(_get(record, "request_id"))}
        return self._actions([account], level, f"distillation traffic score {score:.1f} >= "
                             f"{self.threshold_:.1f} over {n} requests", evidence)

    def _judge_cluster(self, account: str, record: Any, ts: float) -> list[Any]:
        root = self.state.find(account)
        members = self.state.members(root)
        if len(members) < self.policy.cluster_min_accounts:
            return []
        self.state.add(f"cluster:{root}", {"seen": 1}, {})
        if int(self.state.totals(f"cluster:{root}").get("seen", 0)) % self.policy.eval_every:
            return []
        pooled: dict[str, float] = {}
        for m in members:
            for k, v in self.state.totals(m).items():
                if not k.startswith("k_") and k != "last_ts":
                    pooled[k] = pooled.get(k, 0.0) + v
        n_ips = self.state.union_size(members, "ips")
        n_days = self.state.union_size(members, "days")
        n = int(pooled.get("n", 0))
        pooled.pop("n_gaps", None)  # interleaved accounts: pooled gaps are not a client's pacing
        score, ev = self._score(features_from_totals(pooled, n_ips, n_days), n)
        level = self._decide(self.policy.cluster, score, self.cluster_threshold_, n)
        if not level:
            return []
        if self.state.raise_level(f"cluster:{root}", level):
            self._record(root, "cluster", level, score, self.cluster_threshold_, n, record, ts)
        # Members that joined after an earlier escalation are brought up to the cluster's level.
        targets = [m for m in members if self.state.raise_level(f"enforced:{m}", level)]
        if not targets:
            return []
        evidence = {"scope": "cluster", "cluster": root, "accounts": members[:50], "n_accounts": len(members),
                    "score": round(score, 3), "threshold": round(self.cluster_threshold_, 3), "n_requests": n,
                    "features": [e.__dict__ for e in ev], "example_request_id": str(_get(record, "request_id"))}
        return self._actions(targets, level, f"coordinated campaign of {len(members)} accounts, pooled score "
                             f"{score:.1f} >= {self.cluster_threshold_:.1f}", evidence)


def make_guard_state(redis_url: str | None = None, prefix: str = "distillscope:traffic:") -> GuardState:
    """Redis-backed state when ``redis_url`` is set (several workers), else in-process."""
    if redis_url:
        from distillscope.traffic.guard_state import RedisGuardState

        return RedisGuardState(redis_url, prefix)
    return MemoryGuardState()
