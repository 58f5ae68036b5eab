"""Verdict rules: accuse only with a significant suspect and a quiet control; say what is missing."""

from __future__ import annotations

import math

import pytest

from distillscope.audit.combine import combine_audit
from distillscope.audit.results import ModelAudit, TestResult
from distillscope.audit.verdict import decide, tuples_needed


def _audit(role: str, **tests: tuple[float, int]) -> ModelAudit:
    results = tuple(TestResult(name, "exact one-sided sign test" if name == "passive" else "binomial", "ok", n,
                               0.0, "", p) for name, (p, n) in tests.items())
    comb = combine_audit({t.test: t.p_value for t in results})
    return ModelAudit(role, f"local:{role}", role, "f" * 64, results, comb.p_value, comb.method)


def test_accuses_only_when_control_is_quiet():
    suspect = _audit("suspect", open=(1e-12, 900), blackbox=(1e-3, 900), passive=(0.01, 50))
    v = decide(suspect, _audit("control", open=(0.5, 900), blackbox=(0.3, 900), passive=(0.7, 50)),
               alpha=1e-6, control_alpha=0.01, gamma=0.25)
    assert v.label == "trained on our outputs" and v.suspect_p <= 1e-6
    assert "Holm" in suspect.combination and "Fisher" in suspect.combination
    noisy = decide(suspect, _audit("control", open=(1e-4, 900)), alpha=1e-6, control_alpha=0.01, gamma=0.25)
    assert noisy.label == "no evidence" and any("control is significant" in p for p in noisy.problems)


def test_not_significant_is_no_evidence():
    v = decide(_audit("suspect", open=(0.2, 900)), _audit("control", open=(0.6, 900)), alpha=1e-6,
               control_alpha=0.01, gamma=0.25)
    assert v.label == "no evidence" and "control also shows nothing" in v.summary


def test_too_few_tuples_is_inconclusive_and_says_how_many_more():
    suspect = _audit("suspect", open=(0.25 ** 5, 5))
    needed = tuples_needed(suspect, 0.25, 1e-6)
    assert needed == math.ceil(math.log(1e-6) / math.log(0.25)) - 5
    v = decide(suspect, _audit("control", open=(0.9, 5)), alpha=1e-6, control_alpha=0.01, gamma=0.25)
    assert v.label == "inconclusive" and v.needed_more == needed and f"{needed} more scored tuples" in v.summary
    nothing = decide(_audit("suspect"), _audit("control"), alpha=1e-6, control_alpha=0.01, gamma=0.25)
    assert nothing.label == "inconclusive" and "no test" in nothing.summary


@pytest.mark.parametrize("p_open,p_bb", [(1e-3, 0.5), (0.5, 1e-3)])
def test_holm_over_the_two_radioactivity_tests(p_open, p_bb):
    comb = combine_audit({"open": p_open, "blackbox": p_bb})
    assert comb.p_value == pytest.approx(2e-3)
