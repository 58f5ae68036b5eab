"""Combining the radioactivity tests into the one p-value an accusation rests on.

The accusation's null hypothesis is H0: *the suspect is statistically independent of our secret
watermark key*. Only the radioactivity tests (reading mode and black-box) test it. They share the
key, so they may be dependent and are combined with Holm's step-down procedure, valid under any
dependence. Passive attribution tests another null (see :mod:`distillscope.audit.attribution`) and
is never combined into the accusation: it is reported beside it as corroboration.

Every p-value leaving this module is floored at :data:`distillscope.watermark.P_FLOOR` (the
watermark detector's floor, the smallest normal double) so that it is never 0.0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from distillscope.errors import AuditError
from distillscope.watermark import P_FLOOR

#: The tests whose null is "the suspect is independent of our key"; only they can convict.
RADIOACTIVITY_TESTS = ("open", "blackbox")

#: The exact null hypothesis the combined p-value tests (quoted in verdicts and reports).
ACCUSATION_H0 = "the suspect is statistically independent of our secret watermark key"

__all__ = ["ACCUSATION_H0", "Combination", "P_FLOOR", "RADIOACTIVITY_TESTS", "combine_audit", "floor_p", "holm",
           "holm_min"]


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
    """How a model's radioactivity p-values were combined into the one the verdict uses."""

    p_value: float
    method: str
    parts: tuple[str, ...]


def combine_audit(p_by_test: Mapping[str, float]) -> Combination:
    """The p-value of H0 (:data:`ACCUSATION_H0`) from the radioactivity tests that ran.

    Other tests in ``p_by_test`` (passive attribution) are left out on purpose: their null is not
    H0, so joining them would let a test of another hypothesis turn into an accusation.
    """
    radio = {k: float(v) for k, v in p_by_test.items() if k in RADIOACTIVITY_TESTS}
    if not radio:
        return Combination(1.0, "no radioactivity test ran", ())
    if len(radio) == 1:
        (name, p), = radio.items()
        return Combination(floor_p(p), f"single radioactivity test ({name})", (name,))
    return Combination(holm_min(list(radio.values())),
                       f"Holm over {' and '.join(radio)} (they share the key, so they may be dependent)",
                       tuple(radio))
