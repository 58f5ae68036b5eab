"""Combining p-values of several tests, and the p-value helpers every test shares.

Only independent p-values may be multiplied together (Fisher's method); p-values that may be
dependent (the two radioactivity tests share the watermark key) are combined with Holm's
step-down procedure, which is valid under any dependence. Every p-value leaving this module
is floored at :data:`P_FLOOR` so that it is never 0.0, which keeps it conservative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from scipy import stats

from distillscope.errors import AuditError

#: Smallest p-value ever reported. Flooring upwards only makes a p-value more conservative.
P_FLOOR = 1e-300


def floor_p(p: float) -> float:
    """Clip a p-value into ``[P_FLOOR, 1]`` (NaN is treated as "no evidence", 1.0)."""
    if p != p:  # NaN
        return 1.0
    return min(1.0, max(P_FLOOR, float(p)))


def _check(ps: Sequence[float]) -> list[float]:
    if not ps:
        raise AuditError("no p-values to combine", hint="run at least one test")
    bad = [p for p in ps if not (0.0 <= p <= 1.0)]
    if bad:
        raise AuditError(f"p-value {bad[0]!r} is outside [0, 1]", hint="pass probabilities")
    return [floor_p(p) for p in ps]


def fisher(ps: Sequence[float]) -> float:
    """Fisher's method for independent p-values: ``-2 Σ log p ~ χ²(2m)`` under H0."""
    clean = _check(ps)
    statistic = -2.0 * sum(math.log(p) for p in clean)
    return floor_p(math.exp(stats.chi2.logsf(statistic, 2 * len(clean))))


def holm(ps: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (valid under arbitrary dependence), in input order."""
    clean = _check(ps)
    m = len(clean)
    order = sorted(range(m), key=lambda i: clean[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * clean[i]))
        adjusted[i] = floor_p(running)
    return adjusted


def holm_min(ps: Sequence[float]) -> float:
    """The global p-value of Holm's procedure: the smallest adjusted p-value (= Bonferroni min)."""
    return min(holm(ps))


@dataclass(frozen=True)
class Combination:
    """How a model's test p-values were combined into one."""

    p_value: float
    method: str
    parts: tuple[str, ...]


def combine_audit(p_by_test: dict[str, float]) -> Combination:
    """Combine an audit's tests: open + black-box by Holm, then with passive by Fisher.

    The radioactivity tests share the key, so they are combined by Holm; that result is
    independent of the passive test under H0 (radioactivity p-values are uniform given the
    suspect's text, and the passive test uses no key), so Fisher's method joins them.
    """
    radio = {k: v for k, v in p_by_test.items() if k in ("open", "blackbox")}
    other = {k: v for k, v in p_by_test.items() if k not in radio}
    if not p_by_test:
        return Combination(1.0, "no test ran", ())
    parts: list[float] = []
    labels: list[str] = []
    method_bits: list[str] = []
    if radio:
        parts.append(holm_min(list(radio.values())) if len(radio) > 1 else floor_p(next(iter(radio.values()))))
        labels.append("+".join(radio))
        if len(radio) > 1:
            method_bits.append(f"Holm over {' and '.join(radio)} (they share the key)")
    for name, p in other.items():
        parts.append(floor_p(p))
        labels.append(name)
    if len(parts) == 1:
        return Combination(parts[0], "; ".join(method_bits) or f"single test ({labels[0]})", tuple(p_by_test))
    method_bits.append(f"Fisher's method over {', '.join(labels)} (independent under H0)")
    return Combination(fisher(parts), "; then ".join(method_bits), tuple(p_by_test))
