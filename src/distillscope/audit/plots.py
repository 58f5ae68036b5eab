"""The report's figures as inline SVG (matplotlib, Agg backend): no external files, no scripts."""

from __future__ import annotations

import io
import math

from distillscope.audit.results import TEST_TITLES, AuditResult

_STYLE = {"suspect": {"color": "#c0392b", "ls": "-"}, "control": {"color": "#2471a3", "ls": "--"}}


def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams["svg.fonttype"] = "none"
    plt.rcParams["svg.hashsalt"] = "distillscope"  # deterministic ids: the same result gives the same file
    return plt


def pvalue_curves(result: AuditResult) -> str | None:
    """log10 p-value against the number of scored tuples, suspect and control, per radioactivity test."""
    series = [(role, t) for role, audit in (("suspect", result.suspect), ("control", result.control))
              for t in audit.tests if t.ran and t.curve]
    if not series:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for role, t in series:
        xs = [n for n, _ in t.curve]
        ys = [math.log10(p) for _, p in t.curve]
        ax.plot(xs, ys, marker="o", ms=2.5, label=f"{role}: {t.test}", **_STYLE[role])
    ax.axhline(math.log10(result.verdict.alpha), color="#555", lw=0.8, ls=":", label=f"α = {result.verdict.alpha:g}")
    ax.set_xscale("log")
    ax.set_xlabel("scored tuples")
    ax.set_ylabel("log10 p-value")
    ax.legend(fontsize=7, frameon=False)
    ax.grid(alpha=0.25)
    return _svg(fig)


def green_histogram(result: AuditResult, gamma: float | None) -> str | None:
    """Per-chunk mean score (green fraction for KGW) of the scored tuples, suspect against control."""
    series = [(role, t) for role, audit in (("suspect", result.suspect), ("control", result.control))
              for t in audit.tests if t.ran and t.chunk_scores]
    if not series:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    values = [v for _, t in series for v in t.chunk_scores]
    lo, hi = min(values + [gamma or 0.0]), max(values + [gamma or 0.0])
    bins = [lo + (hi - lo + 1e-9) * i / 20 for i in range(21)]
    for role, t in series:
        ax.hist(t.chunk_scores, bins=bins, alpha=0.45, color=_STYLE[role]["color"],
                label=f"{role}: {TEST_TITLES[t.test].split(' (')[0].lower()}")
    if gamma is not None:
        ax.axvline(gamma, color="#555", lw=0.8, ls=":", label=f"γ = {gamma:g} (expected without training)")
    ax.set_xlabel("green fraction per chunk of scored tuples" if gamma is not None else "mean score per chunk")
    ax.set_ylabel("chunks")
    ax.legend(fontsize=7, frameon=False)
    return _svg(fig)
