"""From test results to a verdict a sceptical reviewer accepts.

"trained on our outputs" only when the suspect's combined p-value is at most α *and* the control
is not significant (at ``control_alpha``); "inconclusive" when even a perfect result on the tuples
scored so far could not reach α (the verdict then says how many more are needed); otherwise
"no evidence".
"""

from __future__ import annotations

import math
from typing import Sequence

from distillscope.audit.combine import combine_audit, floor_p
from distillscope.audit.results import ModelAudit, Verdict

ACCUSE, NO_EVIDENCE, INCONCLUSIVE = "trained on our outputs", "no evidence", "inconclusive"


def best_case_p(audit: ModelAudit, gamma: float | None, extra: int = 0) -> float | None:
    """The smallest combined p-value the tests could have given with the same n (``extra`` more
    tuples for the largest radioactivity test): every tuple green, every pair in favour.
    None when the scheme's per-tuple bound is unknown (e.g. Gumbel, whose scores are unbounded)."""
    if gamma is None:
        return None
    radio = [t for t in audit.tests if t.ran and t.test in ("open", "blackbox")]
    best: dict[str, float] = {}
    largest = max(radio, key=lambda t: t.n_scored).test if radio else None
    for t in audit.tests:
        if not t.ran:
            continue
        if t.test in ("open", "blackbox"):
            n = t.n_scored + (extra if t.test == largest else 0)
            best[t.test] = floor_p(math.exp(n * math.log(gamma)))
        elif t.n_scored:
            best[t.test] = floor_p(math.exp(t.n_scored * math.log(0.5))) if "sign" in t.method else t.p_value
        else:
            best[t.test] = 1.0
    return combine_audit(best).p_value if best else 1.0


def tuples_needed(audit: ModelAudit, gamma: float | None, alpha: float) -> int | None:
    """How many more scored tuples the largest radioactivity test needs before α is reachable at all."""
    best = best_case_p(audit, gamma)
    if best is None or best <= alpha:
        return 0 if best is not None else None
    if not any(t.ran and t.test in ("open", "blackbox") for t in audit.tests):
        return None
    lo, hi = 0, 1
    while best_case_p(audit, gamma, hi) > alpha:  # type: ignore[operator]
        lo, hi = hi, hi * 2
        if hi > 10**9:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if best_case_p(audit, gamma, mid) <= alpha else (mid, hi)  # type: ignore[operator]
    return hi


def decide(suspect: ModelAudit, control: ModelAudit, *, alpha: float, control_alpha: float,
           gamma: float | None, problems: Sequence[str] = ()) -> Verdict:
    """Apply the verdict rules (module docstring) to the suspect's and the control's results."""
    problems = list(problems)
    sp, cp = suspect.combined_p, control.combined_p
    ran = [t for t in suspect.tests if t.ran]
    if control.combined_p <= control_alpha:
        problems.append(f"the control is significant too (p = {cp:.3g} ≤ {control_alpha:g}): the tests do not "
                        "separate suspect from control here, so no accusation is made")
    conf = (f"combined p = {sp:.3g} ({suspect.combination}); α = {alpha:g}; "
            f"control p = {cp:.3g}")
    if sp <= alpha and cp > control_alpha:
        summary = (f"The suspect was trained on our outputs: under H0 (not trained on our outputs) evidence this "
                   f"strong has probability at most {sp:.3g} ≤ α = {alpha:g}, and the control shows nothing "
                   f"(p = {cp:.3g}).")
        return Verdict(ACCUSE, summary, conf, alpha, sp, cp, None, tuple(problems))
    best = best_case_p(suspect, gamma) if ran else 1.0
    if best is not None and best > alpha:
        needed = tuples_needed(suspect, gamma, alpha) if ran else None
        if needed:
            more = f"need at least {needed} more scored tuples"
        elif ran:
            more = "need more answers (prompts) or a radioactivity test"
        else:
            more = "no test could be run"
        summary = (f"Inconclusive: {more} before any conclusion at α = {alpha:g} is possible; even a perfect "
                   f"result on what was scored (n = {sum(t.n_scored for t in ran)}) could not reach it.")
        return Verdict(INCONCLUSIVE, summary, conf, alpha, sp, cp, needed, tuple(problems))
    summary = (f"No evidence that the suspect was trained on our outputs (combined p = {sp:.3g} > α = {alpha:g}"
               if sp > alpha else f"No accusation: the suspect's p = {sp:.3g} ≤ α = {alpha:g}, but the control is "
               f"significant too (p = {cp:.3g})")
    summary += "; the control also shows nothing)." if cp > control_alpha and sp > alpha else ")."
    if problems:
        summary += " " + " ".join(p[0].upper() + p[1:] + "." for p in problems)
    return Verdict(NO_EVIDENCE, summary, conf, alpha, sp, cp, None, tuple(problems))
