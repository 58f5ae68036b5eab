"""Demo act 1: the teacher answers with and without the watermark (placeholder until implemented)."""

from __future__ import annotations

from distillscope.demo import ActResult, DemoContext


def act(ctx: DemoContext) -> ActResult:
    raise NotImplementedError("watermark act not written yet")
