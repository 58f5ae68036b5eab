"""The audit's results: frozen dataclasses, serialisable with :func:`dataclasses.asdict`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Names of the three tests, in report order.
TEST_NAMES = ("open", "blackbox", "passive")

TEST_TITLES = {
    "open": "Open-weights radioactivity (reading mode)",
    "blackbox": "Black-box radioactivity",
    "passive": "Passive attribution (corroboration only)",
}


@dataclass(frozen=True)
class TestResult:
    """One test on one model.

    ``status`` is ``"ok"`` (a p-value was computed), ``"skipped"`` (the test cannot run in this
    access mode; ``note`` says why) or ``"failed"`` (it could not run; ``note`` says why).
    ``p_value`` is exact or conservative, floored, never 0.0; 1.0 when nothing was scored.
    ``curve`` holds ``(n_scored, p_value)`` points on growing prefixes of the scored tuples;
    ``chunk_scores`` the mean per-tuple score (the green fraction for KGW) of consecutive chunks.
    """

    __test__ = False  # not a pytest test class

    test: str
    method: str
    status: str
    n_scored: int = 0
    statistic: float = 0.0
    statistic_name: str = ""
    p_value: float = 1.0
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    curve: tuple[tuple[int, float], ...] = ()
    chunk_scores: tuple[float, ...] = ()

    @property
    def ran(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class ModelAudit:
    """All tests on one model (the suspect or the control) and their combination."""

    role: str
    spec: str
    name: str
    fingerprint: str
    tests: tuple[TestResult, ...]
    combined_p: float
    combination: str
    observations: tuple[tuple[str, str], ...] = ()

    def test(self, name: str) -> TestResult | None:
        return next((t for t in self.tests if t.test == name), None)


@dataclass(frozen=True)
class Verdict:
    """The audit's conclusion.

    ``label`` is ``"trained on our outputs"``, ``"no evidence"`` or ``"inconclusive"``;
    ``needed_more`` is how many more scored tuples an inconclusive audit needs (else None);
    ``corroboration`` summarises passive attribution, which never decides the label.
    """

    label: str
    summary: str
    confidence: str
    alpha: float
    suspect_p: float
    control_p: float
    needed_more: int | None = None
    problems: tuple[str, ...] = ()
    corroboration: str = ""


@dataclass(frozen=True)
class AuditResult:
    """Everything the evidence report shows."""

    verdict: Verdict
    suspect: ModelAudit
    control: ModelAudit
    reproducibility: dict[str, Any]
    limitations: tuple[str, ...]
    corpus_check: dict[str, Any]
