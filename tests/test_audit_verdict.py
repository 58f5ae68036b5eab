"""Verdict rules: only radioactivity convicts, with a quiet control; say what is missing."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from distillscope.audit.combine import ACCUSATION_H0, combine_audit
from distillscope.audit.power import tuples_at_effect, tuples_for_best_case
from distillscope.audit.results import ModelAudit, TestResult
from distillscope.audit.verdict import decide, tuples_needed

GAMMA = 0.25


def _test(name: str, p: float, n: int, green: float | None = None, units: int = 0) -> TestResult:
    stat = (green if green is not None else GAMMA) * n
    details = {"units": units, "unit_name": "answers"} if units else {}
    return TestResult(name, "zoo" if name == "passive" else "binomial", "ok", n, stat, "", p, "", details)


def _audit(role: str, *tests: TestResult) -> ModelAudit:
    comb = combine_audit({t.test: t.p_value for t in tests})
    return ModelAudit(role, f"local:{role}", role, "f" * 64, tuple(tests), comb.p_value, comb.method)


def _decide(suspect, control, **kw):
    return decide(suspect, control, alpha=1e-6, control_alpha=0.01, gamma=GAMMA, **kw)


def test_accuses_only_on_radioactivity_with_a_quiet_control():
    suspect = _audit("suspect", _test("open", 1e-12, 900, 0.4), _test("blackbox", 1e-3, 900, 0.28),
                     _test("passive", 0.5, 48))
    v = _decide(suspect, _audit("control", _test("open", 0.5, 900), _test("blackbox", 0.3, 900)))
    assert v.label == "trained on our outputs" and v.suspect_p == pytest.approx(2e-12)
    assert ACCUSATION_H0 in v.summary and ACCUSATION_H0 in v.confidence
    assert "Holm" in suspect.combination and "Fisher" not in suspect.combination
    noisy = _decide(suspect, _audit("control", _test("open", 1e-4, 900)))
    assert noisy.label == "inconclusive" and any("control is significant" in p for p in noisy.problems)


def test_the_old_false_accusation_cannot_happen():
    """The case of the issue: an innocent suspect whose passive test 'wins' against a reference-imitating
    control at p = 2.2e-17. The old rule joined it by Fisher's method with radioactivity (p = 0.56) and
    accused at 4.9e-16; passive attribution never enters the accusation now."""
    old_fisher = stats.combine_pvalues([0.56, 2.2e-17], method="fisher").pvalue
    assert old_fisher < 1e-6  # what the old rule would have reported
    suspect = _audit("suspect", _test("blackbox", 0.56, 1200, 0.245), _test("passive", 2.2e-17, 117))
    control = _audit("control", _test("blackbox", 0.4, 1200), _test("passive", 0.9, 117))
    assert suspect.combined_p == pytest.approx(0.56)
    v = _decide(suspect, control)
    assert v.label == "no evidence" and v.suspect_p == pytest.approx(0.56)
    only_passive = _audit("suspect", _test("passive", 1e-30, 500))
    assert only_passive.combined_p == 1.0
    assert _decide(only_passive, control).label == "inconclusive"  # no radioactivity test: H0 untested


def test_not_significant_is_no_evidence():
    v = _decide(_audit("suspect", _test("open", 0.2, 900)), _audit("control", _test("open", 0.6, 900)))
    assert v.label == "no evidence" and "control also shows nothing" in v.summary


def test_too_few_tuples_is_inconclusive_and_says_how_many_more():
    suspect = _audit("suspect", _test("open", GAMMA ** 5, 5, 1.0))
    needed = tuples_needed(suspect, GAMMA, 1e-6)
    assert needed == math.ceil(math.log(1e-6) / math.log(GAMMA)) - 5
    v = _decide(suspect, _audit("control", _test("open", 0.9, 5)))
    assert v.label == "inconclusive" and v.needed_more == needed and f"{needed} more scored tuples" in v.summary
    nothing = _decide(_audit("suspect"), _audit("control"))
    assert nothing.label == "inconclusive" and "no radioactivity test" in nothing.summary


def test_weak_positive_is_inconclusive_with_the_budget_it_needs():
    """Black-box p = 0.007 at green fraction 0.28 over 900 tuples: suggestive, not proven; the verdict
    says how many tuples (and answers, at the observed yield) a follow-up needs, and the reported
    p-value is the one that was measured."""
    weak = _test("blackbox", 0.007, 900, 0.28, units=300)
    v = _decide(_audit("suspect", weak), _audit("control", _test("blackbox", 0.5, 900)))
    assert v.label == "inconclusive" and v.suspect_p == 0.007
    need = tuples_at_effect(0.28, GAMMA, 1e-6)
    assert v.needed_more == need - 900 and f"about {need} scored tuples" in v.summary
    assert f"about {math.ceil((need - 900) * 300 / 900)} answers" in v.summary and "fresh" in v.summary
    assert _decide(_audit("suspect", _test("blackbox", 0.2, 900, 0.26)), _audit("control")).label == "no evidence"


def test_power_helpers_are_exact():
    assert tuples_for_best_case(0, GAMMA, 1e-6) == math.ceil(math.log(1e-6) / math.log(GAMMA))
    assert tuples_for_best_case(3, GAMMA, 1e-6, m_tests=2) == math.ceil(math.log(5e-7) / math.log(GAMMA)) - 3
    n = tuples_at_effect(0.3, GAMMA, 1e-6)
    assert stats.binom.sf(math.ceil(0.3 * n) - 1, n, GAMMA) <= 1e-6 < stats.binom.sf(math.ceil(0.3 * (n - 1)) - 1,
                                                                                      n - 1, GAMMA)
    assert tuples_at_effect(0.25, GAMMA, 1e-6) is None and tuples_at_effect(0.2, GAMMA, 1e-6) is None


@pytest.mark.parametrize("p_open,p_bb", [(1e-3, 0.5), (0.5, 1e-3)])
def test_holm_over_the_two_radioactivity_tests(p_open, p_bb):
    comb = combine_audit({"open": p_open, "blackbox": p_bb, "passive": 1e-40})
    assert comb.p_value == pytest.approx(2e-3) and comb.parts == ("open", "blackbox")
