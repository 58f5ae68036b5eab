"""The scored features from additive per-entity totals: what the real-time guard keeps per account.

Every scored feature of :data:`features.SCORED_FEATURES` and the distribution test's ``mmd`` is a
function of sums and counts that a stream of requests can update one request at a time, so the
guard computes *the same* features as the batch SQL (same definitions, same NULL rules) and
scores them with the same :class:`~distillscope.traffic.scoring.Calibration`.
:func:`request_totals` turns one request into its increments; :func:`features_from_totals` turns
an entity's totals back into a feature row.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from distillscope.traffic.distribution import DISTRIBUTION_FEATURE, DistributionReference
from distillscope.traffic.features import IN_SESSION_GAP_S

_HOUR = 2 * math.pi / 24


def _get(record: Any, name: str, default: Any = None) -> Any:
    return record.get(name, default) if isinstance(record, dict) else getattr(record, name, default)


def _inputs(name: str, r: dict) -> tuple[float, ...] | None:
    """One distribution input of a request (the SQL expressions of :data:`distribution.INPUTS`)."""
    if name == "cot":
        return None if r["cot"] is None else (float(r["cot"]),)
    if name == "logprobs":
        return (1.0 if (r["logprobs"] or 0) > 0 else 0.0,)
    if name == "max_tokens":
        return (math.log1p(float(r["max_tokens"] or 0)) / 4,)
    if name in ("completion_tokens", "prompt_tokens"):
        return None if r[name] is None else (math.log1p(float(r[name])) / 4,)
    if name == "hour":
        return (math.cos(r["hour"] * _HOUR), math.sin(r["hour"] * _HOUR))
    return None                      # topic embedding: not available online


def request_totals(record: Any, ts: float, content: dict[str, int] | None, last_ts: float | None,
                   dist: DistributionReference | None) -> dict[str, float]:
    """The increments of one request (``content``: its classifier columns, None without prompt)."""
    status = _get(record, "status")
    ok = status is None or status < 400
    mt, ct, pt = _get(record, "max_tokens"), _get(record, "completion_tokens"), _get(record, "prompt_tokens")
    lp, lb = _get(record, "logprobs"), _get(record, "logit_bias")
    hour = int(ts // 3600) % 24
    d: dict[str, float] = {"n": 1, f"h{hour}": 1}
    if status is not None:
        d.update(n_st=1, n_rej=int(not ok))
    if ok:
        d["n_ok"] = 1
        if ct is not None:
            d.update(n_ct=1, sum_ct=ct)
        if pt is not None:
            d["sum_pt"] = pt
        if mt is not None and mt > 0 and ct is not None:
            d.update(n_capden=1, n_cap=int(ct >= 0.95 * mt))
    if mt is not None:
        d.update(n_mt=1, sum_mt=mt)
    if lp is not None:
        d.update(n_lpden=1, n_lp=int(lp > 0), sum_lpk=lp, n_harvest=int(lp > 0 and mt is not None and mt <= 16))
    if lb is not None:
        d.update(n_lbden=1, n_lb=int(bool(lb)))
    if content is not None:
        d.update(n_prompt=1, n_cot=content["cot"], n_dg=content["datagen"])
        d[f"t{content['task']}"] = 1
        d[f"s{content['subject']}"] = 1
    if last_ts is not None and 0 <= ts - last_ts < IN_SESSION_GAP_S:
        gap = ts - last_ts
        d.update(n_gaps=1, sum_gap=gap, sum_gap2=gap * gap)
    if dist is not None:
        row = {"cot": None if content is None else content["cot"], "logprobs": lp, "max_tokens": mt,
               "completion_tokens": ct, "prompt_tokens": pt, "hour": hour}
        parts = [_inputs(name, row) for name in dist.config.inputs]
        if all(p is not None for p in parts):
            x = np.array([v for p in parts for v in p])
            c = np.cos(np.asarray(dist.features.weights) @ x + np.asarray(dist.features.offsets))
            d["n_mmd"] = 1
            d["phi_sq"] = float(c @ c)
            d.update({f"phi{j}": float(v) for j, v in enumerate(c)})
            d.update({f"x{i}": float(v) for i, v in enumerate(x)})
    return d


def _entropy(t: dict[str, float], prefix: str, k: int, min_n: int) -> float:
    counts = np.array([t.get(f"{prefix}{i}", 0.0) for i in range(k)])
    n = counts.sum()
    if n < min_n or n == 0:
        return float("nan")
    p = counts[counts > 0] / n
    return float(-(p * np.log(p)).sum())


def features_from_totals(t: dict[str, float], n_ips: int, n_days: int, *, n_tasks: int, n_subjects: int,
                         dist: DistributionReference | None = None, pooled: bool = False) -> dict[str, float]:
    """The scored features of one entity from its totals (same definitions as the batch SQL).
    ``pooled``: the totals of several accounts (no in-session gaps)."""
    n = t.get("n", 0.0)
    nan = float("nan")

    def ratio(a: str, b: str) -> float:
        return t.get(a, 0.0) / t[b] if t.get(b) else nan

    ng, sg, sg2 = (0.0, 0.0, 0.0) if pooled else (t.get("n_gaps", 0.0), t.get("sum_gap", 0.0), t.get("sum_gap2", 0.0))
    mean_gap = sg / ng if ng else 0.0
    var = (sg2 - sg * sg / ng) / (ng - 1) if ng >= 2 else 0.0
    subject_entropy = _entropy(t, "s", n_subjects, 2)
    logprob_share = ratio("n_lp", "n_lpden")
    out = {
        "n_requests": n,
        "cot_share": ratio("n_cot", "n_prompt"), "datagen_share": ratio("n_dg", "n_prompt"),
        "task_entropy": _entropy(t, "t", n_tasks, 2), "subject_entropy": subject_entropy,
        "mean_max_tokens": ratio("sum_mt", "n_mt"), "mean_completion_tokens": ratio("sum_ct", "n_ct"),
        "out_in_ratio": t["sum_ct"] / t["sum_pt"] if t.get("sum_pt") and "sum_ct" in t else nan,
        "capped_share": ratio("n_cap", "n_capden"),
        "logprob_share": logprob_share, "mean_top_logprobs": ratio("sum_lpk", "n_lpden"),
        "harvest_share": ratio("n_harvest", "n_lpden"), "logprob_breadth": logprob_share * subject_entropy,
        "logit_bias_share": ratio("n_lb", "n_lbden"),
        "hour_entropy": _entropy(t, "h", 24, 1) if n >= 2 else nan,
        "requests_per_day": n / n_days if n_days else nan, "n_days_active": float(n_days),
        "rejected_share": ratio("n_rej", "n_st"),
        "ip_rotation": n_ips / n if n >= 2 and n_ips else nan,
        "gap_cv": math.sqrt(max(var, 0.0)) / mean_gap if ng >= 3 and mean_gap > 0 else nan,
    }
    out[DISTRIBUTION_FEATURE] = nan
    if dist is not None and t.get("n_mmd", 0) >= dist.config.min_rows:
        m = t["n_mmd"]
        d = len(dist.features.offsets)
        mean = math.sqrt(2.0 / d) * np.array([t.get(f"phi{j}", 0.0) for j in range(d)]) / m
        sq = (2.0 / d) * t["phi_sq"] / m
        out[DISTRIBUTION_FEATURE] = dist.statistic(mean, (m * m * float(mean @ mean) - m * sq) / (m * (m - 1)))
        for i in range(len(dist.config.expressions)):
            out[f"mmd_x{i}"] = t.get(f"x{i}", 0.0) / m
    return out
