"""Exact tail probabilities of the detection statistics, finite far below 1e-300.

Each function returns ``(p_value, log10_p)``. ``log10_p`` is the exact tail in log10; it is
computed by SciPy's (Boost) survival function while that is a normal double, and beyond that
by summing the log-probability terms with ``logsumexp`` (all terms positive: no cancellation).
``p_value`` is ``10**log10_p`` floored at the smallest positive normal double, so it is never
0.0 and, where floored, larger than the truth: conservative.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special, stats

P_FLOOR = float(np.finfo(np.float64).tiny)  # 2.2250738585072014e-308
_SF_TRUST = 1e-290  # below this the SciPy survival function is replaced by the log-sum


def _result(log10_p: float) -> tuple[float, float]:
    log10_p = min(0.0, log10_p)
    return max(10.0 ** log10_p, P_FLOOR), log10_p


def binomial_upper_tail(k: int, n: int, p0: float) -> tuple[float, float]:
    """``P(X >= k)`` for ``X ~ Binomial(n, p0)``: the KGW null distribution of the green count."""
    if n < 0 or not 0 <= k or not 0.0 < p0 < 1.0:
        raise ValueError(f"invalid binomial tail arguments k={k} n={n} p0={p0}")
    if k <= 0:
        return 1.0, 0.0
    if k > n:
        return P_FLOOR, -math.inf
    sf = float(stats.binom.sf(k - 1, n, p0))
    if sf >= _SF_TRUST:
        return _result(math.log10(sf))
    j = np.arange(k, n + 1)
    log_terms = stats.binom.logpmf(j, n, p0)
    return _result(float(special.logsumexp(log_terms)) / math.log(10))


def gamma_upper_tail(score: float, n: int) -> tuple[float, float]:
    """``P(S >= score)`` for ``S ~ Gamma(n, 1)``: the Gumbel-scheme null (sum of n Exp(1)).

    For integer ``n`` the tail equals the Poisson CDF ``P(Poisson(score) <= n-1)``, whose terms
    are summed in log space when the direct value underflows.
    """
    if n < 0 or not math.isfinite(score):
        raise ValueError(f"invalid gamma tail arguments score={score} n={n}")
    if n == 0 or score <= 0.0:
        return 1.0, 0.0
    sf = float(stats.gamma.sf(score, n))
    if sf >= _SF_TRUST:
        return _result(math.log10(sf))
    j = np.arange(0, n)
    log_terms = j * math.log(score) - score - special.gammaln(j + 1)
    return _result(float(special.logsumexp(log_terms)) / math.log(10))


def binomial_z(k: int, n: int, p0: float) -> float | None:
    """Standardised green count, reported for reading only (the p-value is exact)."""
    if n == 0:
        return None
    return (k - n * p0) / math.sqrt(n * p0 * (1.0 - p0))


def gamma_z(score: float, n: int) -> float | None:
    """Standardised Gumbel score ``(S - n) / sqrt(n)``, for reading only."""
    if n == 0:
        return None
    return (score - n) / math.sqrt(n)
