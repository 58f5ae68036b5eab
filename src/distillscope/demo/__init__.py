"""``distillscope demo``: the whole case, act by act, on embedded defaults.

Each capability contributes one *act*: a function ``act(ctx: DemoContext) -> ActResult``.
Acts run in order and share artifacts (loaded models, the gateway URL, trained students)
through ``ctx.artifacts``. ``quick=True`` swaps in tiny models for smoke tests.
"""

from __future__ import annotations

import importlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from distillscope.progress import Progress, ensure_progress
from distillscope.settings import Settings

logger = logging.getLogger(__name__)

# Act modules, in the order the story is told; each defines ``act(ctx) -> ActResult``.
ACT_MODULES = [
    "distillscope.demo.watermark_act",
    "distillscope.demo.gateway_act",
    "distillscope.demo.traffic_act",
    "distillscope.demo.distill_act",
    "distillscope.demo.audit_act",
]


@dataclass
class DemoContext:
    settings: Settings
    workdir: Path
    quick: bool = False
    progress: Progress | None = None
    artifacts: dict[str, Any] = field(default_factory=dict)

    @property
    def reporter(self) -> Progress:
        return ensure_progress(self.progress)


@dataclass(frozen=True)
class ActResult:
    """What one act shows: a titled table plus free-text notes."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    notes: tuple[str, ...] = ()
    seconds: float = 0.0
    act: str = ""          # short name of the act (its module without ``_act``), set by run_demo


def timeline(results: Sequence[ActResult]) -> str:
    """One line with every act's wall time, e.g. ``watermark 19s → gateway 10s → … = 540s``."""
    steps = " → ".join(f"{r.act or r.title.split(':')[0]} {r.seconds:.0f}s" for r in results)
    return f"{steps} = {sum(r.seconds for r in results):.0f}s"


def load_acts(modules: Sequence[str] = tuple(ACT_MODULES)) -> list[Callable[[DemoContext], ActResult]]:
    return [importlib.import_module(m).act for m in modules]


def _act_name(act: Callable[..., Any]) -> str:
    return act.__module__.rsplit(".", 1)[-1].removesuffix("_act")


def run_demo(ctx: DemoContext, on_result: Callable[[ActResult], None] | None = None) -> list[ActResult]:
    """Run every act in order; ``on_result`` sees each result as soon as it is ready.

    Acts may leave shutdown callables (a running gateway, temp servers) in
    ``ctx.artifacts["cleanup"]``; they run in reverse order when the demo ends, even on error.
    """
    results = []
    try:
        for act in load_acts():
            t0 = time.perf_counter()
            res = act(ctx)
            res = ActResult(res.title, res.columns, res.rows, res.notes, time.perf_counter() - t0, _act_name(act))
            results.append(res)
            if on_result:
                on_result(res)
    finally:
        for fn in reversed(ctx.artifacts.get("cleanup", [])):
            try:
                fn()
            except Exception:  # cleanup must not hide the demo's own error
                logger.warning("demo cleanup step failed", exc_info=True)
    return results
