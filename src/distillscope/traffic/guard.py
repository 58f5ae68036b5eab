"""The real-time guard: the batch scorer and calibration, applied one request at a time.

:class:`TrafficGuard` implements the gateway's ``RequestGuard`` protocol. For every logged request
it adds the request to additive totals (see :mod:`.totals` and :mod:`.guard_state`) of its
account, of its end user (``account/user`` when the request names one), and of the account's
current window of ``window`` requests; recomputes the scored features -- the same definitions as
the batch SQL, content columns from the same classifier, the distribution test from the same
random features -- and scores them with the **same** :class:`~distillscope.traffic.scoring.Calibration`
as :func:`~distillscope.traffic.scan.scan` (combined score, conformal/GPD p-value). Accounts that
share rare keys (IPs, subnets, exact masked templates, a template in the same five minutes) are
linked with the batch :class:`~distillscope.traffic.campaigns.LinkRule` and merged into clusters
whose pooled totals are scored too.

The policy escalates ``flag -> throttled -> suspended -> revoked`` as the p-value falls and
evidence grows (rungs are multiples of the calibration's ``alpha``); ``flag`` is recorded in
:attr:`TrafficGuard.events` only, the others become ``EnforcementAction`` objects that the gateway
applies and audits with their evidence.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Sequence

import numpy as np
import pandas as pd

from distillscope.errors import TrafficError
from distillscope.traffic.campaigns import LinkRule
from distillscope.traffic.content import classifier_text, content_model
from distillscope.traffic.guard_state import GuardState, MemoryGuardState
from distillscope.traffic.scoring import SCORED, Calibration, combine_matrix, evidence
from distillscope.traffic.templates import last_user_text, mask
from distillscope.traffic.totals import _get, features_from_totals, request_totals

logger = logging.getLogger(__name__)

LEVELS = ("flag", "throttled", "suspended", "revoked")


@dataclass(frozen=True)
class Rung:
    """One step of the ladder: reached when p <= factor x alpha with >= min_requests requests."""

    level: str
    factor: float
    min_requests: int


@dataclass(frozen=True)
class GuardPolicy:
    """The escalation policy.

    account: rungs for single accounts, end users and windows, on the Bonferroni-adjusted
    p-value (flag and throttle at p <= alpha after 5 / 20 requests, suspend at alpha/10 after 50,
    revoke at alpha/100 after 100). cluster: rungs for clusters of linked accounts on pooled
    requests (alpha after 30 / 60, alpha/10 after 120 / 200; the pooled score must
    also beat every benign cluster of the calibration). cluster_min_accounts: a cluster needs at
    least this many accounts (3). eval_every: score a cluster on every n-th request of its accounts
    (5). window: requests per account window (150; the batch scan's window). max_key_accounts:
    keys shared by more accounts are too common to link (200). sync_bucket_s: synchronisation
    bucket (300). actor: audit actor.
    """

    account: tuple[Rung, ...] = (Rung("flag", 1.0, 5), Rung("throttled", 1.0, 20), Rung("suspended", 0.1, 50),
                                 Rung("revoked", 0.01, 100))
    cluster: tuple[Rung, ...] = (Rung("flag", 1.0, 30), Rung("throttled", 1.0, 60), Rung("suspended", 0.1, 120),
                                 Rung("revoked", 0.1, 200))
    cluster_min_accounts: int = 3
    eval_every: int = 5
    window: int = 150
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
        if self.window < 10:
            raise TrafficError(f"policy window={self.window} is too small", hint="e.g. 150 requests")


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
    p_value: float = 1.0


def _epoch(ts: Any) -> float:
    if isinstance(ts, datetime):
        return (ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)).timestamp()
    if isinstance(ts, str):
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    return float(ts)


class TrafficGuard:
    """Real-time scores and enforcement (a gateway ``RequestGuard``).

    calibration: the benign calibration from :func:`distillscope.traffic.calibrate` (the one the
    batch scan uses). policy: the escalation ladder. state: :class:`MemoryGuardState` (one
    worker, default) or :class:`RedisGuardState` (shared by workers; see :func:`make_guard_state`).
    """

    def __init__(self, calibration: Calibration, policy: GuardPolicy | None = None,
                 state: GuardState | None = None) -> None:
        from distillscope.traffic.prepare import PrepareConfig

        self.calibration = calibration
        self.policy = policy or GuardPolicy()
        self.state = state or MemoryGuardState()
        self.threshold_ = calibration.account_threshold
        self.cluster_threshold_ = calibration.campaign_threshold
        self.events: list[GuardEvent] = []
        self._content = content_model(PrepareConfig().content)
        self._dist = calibration.distribution_reference
        self._sizes = {"n_tasks": len(self._content.tasks_), "n_subjects": len(self._content.topics_)}

    # --- scoring (the batch scorer on one feature row) ---------------------------------------------
    def features(self, entity: str, *, pooled_members: list[str] | None = None) -> dict[str, float]:
        """The scored features of an account (or ``account/user``, ``account#window``) from its totals."""
        if pooled_members is None:
            t = self.state.totals(entity)
            return features_from_totals(t, self.state.set_size(entity, "ips"), self.state.set_size(entity, "days"),
                                        dist=self._dist, **self._sizes)
        pooled: dict[str, float] = {}
        for m in pooled_members:
            for k, v in self.state.totals(m).items():
                if not k.startswith("k_") and k != "last_ts":
                    pooled[k] = pooled.get(k, 0.0) + v
        return features_from_totals(pooled, self.state.union_size(pooled_members, "ips"),
                                    self.state.union_size(pooled_members, "days"), dist=self._dist,
                                    pooled=True, **self._sizes)

    def score(self, feats: dict[str, float], window: bool = False) -> tuple[float, float, np.ndarray]:
        """(score, p-value, z vector) with the calibration's scorer (window: the window null)."""
        cal = self.calibration
        x = np.array([[feats.get(f, np.nan) for f in SCORED]], dtype=float)
        z = cal.normaliser_.z_matrix(x, np.array([feats["n_requests"]]))
        s = combine_matrix(z, cal.config)
        tail = cal.window_tail_ if window and cal.window_tail_ is not None else cal.tail_
        return float(s[0]), float(tail.p_values(s)[0]), z[0]

    def _evidence(self, feats: dict[str, float], z: np.ndarray) -> list[dict]:
        ev = evidence(pd.Series(feats), pd.Series(z, index=list(SCORED)), self.calibration)
        return [e.__dict__ for e in ev]

    def account_score(self, account: str) -> tuple[float, float]:
        """The account's current (score, p-value): what :func:`scan` gives the same requests."""
        s, p, _ = self.score(self.features(account))
        return s, p

    # --- the RequestGuard protocol ---------------------------------------------------------------
    def observe(self, record: Any) -> Sequence[Any]:
        account = _get(record, "account_id")
        if not account:
            return ()
        ts = _epoch(_get(record, "ts"))
        prompt = _get(record, "prompt")
        content = None
        if prompt is not None:
            pred = self._content.predict([classifier_text(prompt) or ""])
            content = {"cot": int(pred.reasoning[0] >= 0.5), "datagen": int(pred.datagen[0] >= 0.5),
                       "task": int(pred.task[0]), "subject": int(pred.topic[0])}
        n_before = int(self.state.totals(account).get("n", 0))
        entities = [account, f"{account}#w{n_before // self.policy.window}"]
        user = _get(record, "user")
        if user:
            entities.append(f"{account}/{user}")
        sets = {"days": str(int(ts // 86400))}
        if _get(record, "client_ip"):
            sets["ips"] = _get(record, "client_ip")
        for entity in entities:
            last = self.state.totals(entity).get("last_ts")
            d = request_totals(record, ts, content, last, self._dist)
            d["last_ts"] = ts - (last or 0.0)
            self.state.add(entity, d, sets)
        if user:
            self.state.add(account, {}, {"users": str(user)})
        ask = last_user_text(prompt) if prompt else None
        template = hashlib.blake2b(mask(ask).encode(), digest_size=8).hexdigest() if ask else None
        self._link(account, record, ts, template)
        actions = list(self._judge_account(account, entities, record, ts))
        actions += self._judge_cluster(account, record, ts)
        return actions

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

    def _decide(self, rungs: tuple[Rung, ...], p: float, n: int) -> int:
        level = 0
        for rung in rungs:
            if p <= rung.factor * self.calibration.config.alpha and n >= rung.min_requests:
                level = max(level, LEVELS.index(rung.level) + 1)
        return level

    def _record(self, target: str, scope: str, level: int, score: float, threshold: float, n: int,
                record: Any, ts: float, p: float = 1.0) -> None:
        event = GuardEvent(datetime.fromtimestamp(ts, timezone.utc).isoformat(), target, scope, LEVELS[level - 1],
                           round(score, 3), round(threshold, 3), n, str(_get(record, "request_id")), p)
        self.events.append(event)
        logger.info("traffic guard: %s %s -> %s (score %.2f, threshold %.2f, %d requests)", scope, target,
                    event.level, score, threshold, n)

    def _actions(self, targets: list[str], level: int, reason: str, evidence: dict) -> list[Any]:
        if LEVELS[level - 1] == "flag":
            return []
        from distillscope.gateway.enforcement import EnforcementAction

        return [EnforcementAction("account", t, LEVELS[level - 1], reason, self.policy.actor, evidence)
                for t in targets]

    def _judge_account(self, account: str, entities: list[str], record: Any, ts: float) -> list[Any]:
        """Score the account, its current window and its end user; act on the strongest (Bonferroni)."""
        best = None
        n_users = max(1, self.state.set_size(account, "users"))
        for entity in entities:
            scope = "account" if entity == account else ("window" if "#w" in entity[len(account):] else "end_user")
            feats = self.features(entity)
            n = int(feats["n_requests"])
            if scope == "window" and n < self.policy.window:
                continue                                   # a window is judged once it is complete
            score, p, z = self.score(feats, window=scope == "window")
            n_tests = (int(entity.rsplit("#w", 1)[1]) + 1) if scope == "window" else (n_users if scope == "end_user" else 1)
            p_adj = min(1.0, p * n_tests)
            n_acc = int(self.state.totals(account).get("n", 0))
            level = self._decide(self.policy.account, p_adj, n_acc if scope != "account" else n)
            if level and (best is None or (level, -p_adj) > (best[0], -best[1])):
                best = (level, p_adj, scope, entity, score, n, feats, z)
        if best is None:
            return []
        level, p_adj, scope, entity, score, n, feats, z = best
        if not self.state.raise_level(f"enforced:{account}", level):
            return []
        self._record(account, scope, level, score, self.threshold_, n, record, ts, p_adj)
        payload = {"scope": scope, "entity": entity, "score": round(score, 3), "p_value": p_adj,
                   "threshold": round(self.threshold_, 3), "n_requests": n, "features": self._evidence(feats, z),
                   "example_request_id": str(_get(record, "request_id"))}
        where = "" if scope == "account" else f" ({scope} {entity})"
        return self._actions([account], level, f"distillation traffic score {score:.1f}, p = {p_adj:.2g}{where} "
                             f"over {n} requests", payload)

    def _judge_cluster(self, account: str, record: Any, ts: float) -> list[Any]:
        root = self.state.find(account)
        members = self.state.members(root)
        if len(members) < self.policy.cluster_min_accounts:
            return []
        self.state.add(f"cluster:{root}", {"seen": 1}, {})
        if int(self.state.totals(f"cluster:{root}").get("seen", 0)) % self.policy.eval_every:
            return []
        feats = self.features(root, pooled_members=members)
        n = int(feats["n_requests"])
        score, p, z = self.score(feats)
        level = self._decide(self.policy.cluster, p, n) if score > self.cluster_threshold_ else 0
        if not level:
            return []
        if self.state.raise_level(f"cluster:{root}", level):
            self._record(root, "cluster", level, score, self.cluster_threshold_, n, record, ts, p)
        # Members that joined after an earlier escalation are brought up to the cluster's level.
        targets = [m for m in members if self.state.raise_level(f"enforced:{m}", level)]
        if not targets:
            return []
        payload = {"scope": "cluster", "cluster": root, "accounts": members[:50], "n_accounts": len(members),
                   "score": round(score, 3), "p_value": p, "threshold": round(self.cluster_threshold_, 3),
                   "n_requests": n, "features": self._evidence(feats, z),
                   "example_request_id": str(_get(record, "request_id"))}
        return self._actions(targets, level, f"coordinated campaign of {len(members)} accounts, pooled score "
                             f"{score:.1f} >= {self.cluster_threshold_:.1f} (p = {p:.2g})", payload)


def make_guard_state(redis_url: str | None = None, prefix: str = "distillscope:traffic:") -> GuardState:
    """Redis-backed state when ``redis_url`` is set (several workers), else in-process."""
    if redis_url:
        from distillscope.traffic.guard_state import RedisGuardState

        return RedisGuardState(redis_url, prefix)
    return MemoryGuardState()
