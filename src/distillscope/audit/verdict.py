"""From test results to a verdict a sceptical reviewer accepts.

Only the radioactivity tests decide (their combined p-value tests
:data:`~distillscope.audit.combine.ACCUSATION_H0`); passive attribution is reported as
corroboration and can neither make nor block an accusation.

* **trained on our outputs** — the suspect's radioactivity p ≤ α and the control's is not
  significant (> ``control_alpha``);
* **inconclusive** — (a) the control is significant too (the tests do not separate the two here);
  (b) even an all-green result on what was scored could not reach α; or (c) the evidence is
  suggestive (p ≤ ``weak_alpha``) but short of α. The verdict then says how many more scored tuples
  (and, at the observed yield, answers or texts) a follow-up would need (:mod:`.power`);
* **no evidence** — otherwise.
"""

from __future__ import annotations

import math
from typing import Sequence

from distillscope.audit.combine import ACCUSATION_H0, RADIOACTIVITY_TESTS
from distillscope.audit.power import tuples_at_effect, tuples_for_best_case
from distillscope.audit.results import ModelAudit, TestResult, Verdict

ACCUSE, NO_EVIDENCE, INCONCLUSIVE = "trained on our outputs", "no evidence", "inconclusive"

FOLLOW_UP = ("Collect it as fresh prompts or samples and judge the follow-up audit on its own; the p-value above "
             "stands as reported.")


def _radio(audit: ModelAudit) -> list[TestResult]:
    return [t for t in audit.tests if t.ran and t.test in RADIOACTIVITY_TESTS]


def tuples_needed(audit: ModelAudit, gamma: float | None, alpha: float) -> int | None:
    """More scored tuples the largest radioactivity test needs before α is reachable at all
    (0 when it already is; None when the scheme's per-tuple bound is unknown or no test ran)."""
    radio = _radio(audit)
    if gamma is None or not radio:
        return None
    return tuples_for_best_case(max(t.n_scored for t in radio), gamma, alpha, len(radio))


def _units(test: TestResult, tuples: int) -> str:
    """``tuples`` expressed in the test's own units at its observed yield (answers or texts)."""
    units, name = test.details.get("units"), test.details.get("unit_name")
    if not units or not test.n_scored or not name:
        return ""
    return f" (about {math.ceil(tuples * units / test.n_scored)} {name} at the observed {test.n_scored / units:.3g} " \
           f"tuples per {name.rstrip('s')})"


def _at_effect(audit: ModelAudit, gamma: float | None, alpha: float) -> tuple[int | None, str]:
    """Tuples the strongest radioactivity test needs at its observed green fraction, and a sentence."""
    radio = [t for t in _radio(audit) if t.n_scored]
    if gamma is None or not radio:
        return None, ""
    best = min(radio, key=lambda t: t.p_value)
    g = best.statistic / best.n_scored
    need = tuples_at_effect(g, gamma, alpha, len(_radio(audit)))
    if need is None:
        return None, ""
    more = max(0, need - best.n_scored)
    return more, (f"At the observed green fraction of the {best.test} test ({g:.3f} against γ = {gamma:g}), about "
                  f"{need} scored tuples would reach α, {more} more than were scored{_units(best, more)}.")


def decide(suspect: ModelAudit, control: ModelAudit, *, alpha: float, control_alpha: float,
           gamma: float | None, weak_alpha: float = 0.05, problems: Sequence[str] = (),
           corroboration: str = "") -> Verdict:
    """Apply the verdict rules (module docstring) to the suspect's and the control's results."""
    problems = list(problems)
    sp, cp = suspect.combined_p, control.combined_p
    ran = _radio(suspect)
    conf = (f"H0: {ACCUSATION_H0}; radioactivity p = {sp:.3g} ({suspect.combination}); α = {alpha:g}; "
            f"control p = {cp:.3g}")

    def verdict(label: str, summary: str, needed: int | None = None) -> Verdict:
        return Verdict(label, summary, conf, alpha, sp, cp, needed, tuple(problems), corroboration)

    if cp <= control_alpha:
        problems.append(f"the control is significant too (p = {cp:.3g} ≤ {control_alpha:g}): the tests do not "
                        "separate suspect from control here, so no accusation is made")
    if sp <= alpha and cp > control_alpha:
        return verdict(ACCUSE, (
            f"The suspect was trained on our outputs. Rejected H0 ({ACCUSATION_H0}): evidence this strong has "
            f"probability at most {sp:.3g} ≤ α = {alpha:g} under H0, and the control shows nothing (p = {cp:.3g}). "
            "Our key is secret and shaped only the outputs we served, so dependence on it means the suspect "
            "learned from text carrying our watermark: our outputs, or text derived from them."))
    if sp <= alpha:
        return verdict(INCONCLUSIVE, (
            f"Inconclusive: the suspect's radioactivity p = {sp:.3g} ≤ α = {alpha:g}, but the control is "
            f"significant too (p = {cp:.3g}), so the tests do not separate them here. Check the key and the "
            "corpus (a corpus filtered after the fact, or a key shared elsewhere, breaks H0 for every model)."))
    if not ran:
        return verdict(INCONCLUSIVE, "Inconclusive: no radioactivity test could be run, so H0 "
                                     f"({ACCUSATION_H0}) was not tested.")
    best_needed = tuples_needed(suspect, gamma, alpha)
    if best_needed:
        largest = max(ran, key=lambda t: t.n_scored)
        return verdict(INCONCLUSIVE, (
            f"Inconclusive: even if every scored tuple had been green, {largest.n_scored} tuples could not reach "
            f"α = {alpha:g}; need at least {best_needed} more scored tuples{_units(largest, best_needed)}. "
            + FOLLOW_UP), best_needed)
    more, effect = _at_effect(suspect, gamma, alpha)
    if sp <= weak_alpha:
        return verdict(INCONCLUSIVE, (
            f"Inconclusive: suggestive (radioactivity p = {sp:.3g} ≤ {weak_alpha:g}) but short of α = {alpha:g}; "
            "H0 is not rejected. " + (effect + " " if effect else "") + FOLLOW_UP), more)
    summary = (f"No evidence that the suspect depends on our watermark key (radioactivity p = {sp:.3g} > "
               f"α = {alpha:g}; H0: {ACCUSATION_H0})")
    summary += "; the control also shows nothing." if cp > control_alpha else "."
    return verdict(NO_EVIDENCE, summary)
