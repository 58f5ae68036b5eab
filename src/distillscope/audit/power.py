"""How much more evidence an audit would need: the honest-power half of the verdict.

Nothing here changes a reported p-value. These are planning figures for a *follow-up* audit on
fresh prompts or samples, which is then judged on its own: re-testing the same data until it
crosses α would inflate the false-accusation rate, so the verdict says how much more to collect,
never "this looks close enough".

Two questions, both for the KGW binomial test (the per-tuple null probability γ is known):

* *could α be reached at all* with what was scored? Even if every tuple were green, n tuples give
  p = γⁿ (per test; Holm multiplies by the number of radioactivity tests). When that is above α
  the audit cannot accuse whatever the suspect did (:func:`tuples_for_best_case`);
* *at the observed effect*, how many tuples would a test need before its expected green count
  gives p ≤ α (:func:`tuples_at_effect`): the exact binomial tail at k = ⌈ĝ·n⌉, searched over n.
"""

from __future__ import annotations

import math

from scipy import stats

MAX_TUPLES = 10**9


def _log_tail(k: int, n: int, gamma: float) -> float:
    """log P(Bin(n, γ) ≥ k)."""
    return float(stats.binom.logsf(k - 1, n, gamma)) if k > 0 else 0.0


def tuples_for_best_case(n_scored: int, gamma: float, alpha: float, m_tests: int = 1) -> int:
    """More tuples (beyond ``n_scored``) before an all-green result could give Holm p ≤ α."""
    if not 0.0 < gamma < 1.0:
        raise ValueError(f"gamma={gamma!r} must lie in (0, 1)")
    needed = math.ceil((math.log(alpha) - math.log(max(1, m_tests))) / math.log(gamma))
    return max(0, needed - n_scored)


def tuples_at_effect(green_fraction: float, gamma: float, alpha: float, m_tests: int = 1) -> int | None:
    """Scored tuples a test needs for p ≤ α/m if its green fraction stayed at ``green_fraction``.

    None when the observed effect is nil (ĝ ≤ γ) or would need more than :data:`MAX_TUPLES`.
    """
    if not 0.0 < gamma < 1.0:
        raise ValueError(f"gamma={gamma!r} must lie in (0, 1)")
    if not green_fraction > gamma:
        return None
    target = math.log(alpha / max(1, m_tests))

    def reaches(n: int) -> bool:
        return _log_tail(math.ceil(green_fraction * n - 1e-9), n, gamma) <= target

    lo, hi = 0, 1
    while not reaches(hi):
        lo, hi = hi, hi * 2
        if hi > MAX_TUPLES:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if reaches(mid) else (mid, hi)
    return hi
