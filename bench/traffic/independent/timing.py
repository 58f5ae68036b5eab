"""When requests arrive: local-time diurnal and weekly curves, sessions, app streams, batch runs.

Times are seconds since the start of the log (a Monday, 00:00 UTC). Every account has a UTC
offset; curves are evaluated in local time.
"""

from __future__ import annotations

import math
import random

DAY = 86400.0

#: Relative activity per local hour, by profile.
_HOURLY = {
    # people on their own time: low at night, a lunch bump, a big evening peak
    "evening": (0.25, 0.12, 0.06, 0.04, 0.03, 0.04, 0.1, 0.25, 0.45, 0.55, 0.6, 0.65, 0.75, 0.7, 0.65, 0.65, 0.7,
                0.8, 0.95, 1.0, 1.0, 0.95, 0.75, 0.45),
    # office hours with a lunch dip
    "work": (0.02, 0.01, 0.01, 0.01, 0.01, 0.02, 0.05, 0.2, 0.6, 0.95, 1.0, 0.95, 0.6, 0.85, 1.0, 0.95, 0.85, 0.6,
             0.3, 0.18, 0.12, 0.08, 0.05, 0.03),
    # a consumer app's aggregate: smooth, never zero
    "app": (0.35, 0.25, 0.18, 0.14, 0.13, 0.16, 0.28, 0.45, 0.62, 0.75, 0.85, 0.9, 0.92, 0.92, 0.9, 0.88, 0.88, 0.9,
            0.95, 1.0, 0.98, 0.9, 0.7, 0.5),
    # user-generated content never sleeps
    "flat": (0.7, 0.62, 0.56, 0.52, 0.5, 0.52, 0.6, 0.7, 0.8, 0.86, 0.9, 0.92, 0.94, 0.95, 0.95, 0.95, 0.96, 0.98,
             1.0, 1.0, 0.98, 0.95, 0.88, 0.78),
}
#: Relative activity per local weekday (Monday first).
_WEEKLY = {
    "evening": (0.9, 0.9, 0.95, 0.95, 0.9, 1.15, 1.2),
    "work": (1.0, 1.0, 1.0, 0.98, 0.85, 0.08, 0.05),
    "app": (1.0, 1.0, 1.0, 1.0, 0.97, 0.8, 0.78),
    "flat": (1.0, 1.0, 1.0, 1.0, 1.0, 1.05, 1.05),
}

#: Offsets (hours) of the user base, weighted (Americas, Europe/Africa, Asia-Pacific).
TZ_WEIGHTS = {-8: 0.1, -7: 0.04, -6: 0.07, -5: 0.12, -3: 0.05, 0: 0.07, 1: 0.16, 2: 0.06, 3: 0.04, 5.5: 0.08,
              7: 0.04, 8: 0.09, 9: 0.06, 10: 0.02}


def pick_tz(rng: random.Random) -> float:
    return rng.choices(list(TZ_WEIGHTS), list(TZ_WEIGHTS.values()))[0]


def activity(t: float, tz: float, profile: str) -> float:
    local = t + tz * 3600.0
    hour = int(local // 3600) % 24
    weekday = int(local // DAY) % 7
    return _HOURLY[profile][hour] * _WEEKLY[profile][weekday]


def sample_times(rng: random.Random, n: int, t0: float, t1: float, tz: float, profile: str) -> list[float]:
    """``n`` independent arrival times in ``[t0, t1)`` following the profile's curve (rejection)."""
    out: list[float] = []
    span = t1 - t0
    if span <= 0:
        return [t0] * n
    tries = 0
    while len(out) < n and tries < 60 * n + 100:
        tries += 1
        t = t0 + rng.random() * span
        if rng.random() < activity(t, tz, profile):
            out.append(t)
    while len(out) < n:
        out.append(t0 + rng.random() * span)
    out.sort()
    return out


def sessions(rng: random.Random, n: int, t0: float, t1: float, tz: float, profile: str,
             mean_len: float, think_median_s: float) -> list[float]:
    """``n`` requests grouped into sessions: session starts follow the curve; inside a session the
    gaps are human think times (log-normal around ``think_median_s``)."""
    out: list[float] = []
    while len(out) < n:
        k = min(n - len(out), 1 + int(rng.expovariate(1 / max(mean_len - 1, 0.01))))
        start = sample_times(rng, 1, t0, t1, tz, profile)[0]
        t = start
        for _ in range(k):
            out.append(t)
            t += rng.lognormvariate(math.log(think_median_s), 0.9)
    out.sort()
    return [min(x, t1 - 1.0) for x in out]


def bursts(rng: random.Random, starts: list[float], sizes: list[int], gap_median_s: float,
           jitter: float = 0.4) -> list[float]:
    """Machine-paced runs: at each start, ``size`` requests separated by short, regular gaps."""
    out: list[float] = []
    for start, size in zip(starts, sizes):
        t = start
        for _ in range(size):
            out.append(t)
            t += rng.lognormvariate(math.log(gap_median_s), jitter)
    out.sort()
    return out


def heavy_count(rng: random.Random, median: float, sigma: float, lo: int = 1, hi: int = 100_000) -> int:
    """A log-normal count: most accounts small, a few very large."""
    return max(lo, min(hi, int(round(rng.lognormvariate(math.log(median), sigma)))))


def active_window(rng: random.Random, days: int, p_new: float = 0.15, p_churn: float = 0.1) -> tuple[float, float]:
    """The part of the log an account is active in: some sign up during it, some stop."""
    t0, t1 = 0.0, days * DAY
    if rng.random() < p_new:
        t0 = rng.uniform(0, days * DAY * 0.8)
    if rng.random() < p_churn:
        t1 = rng.uniform(t0 + DAY * 0.5, days * DAY) if t0 + DAY * 0.5 < days * DAY else days * DAY
    return t0, t1
