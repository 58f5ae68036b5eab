"""Demo act 1: the teacher answers a dozen prompts with and without the watermark.

Loads the teacher (``tiny`` in quick mode), answers the built-in prompts once watermarked and
once plain (one batch each), and tests every answer for the watermark: watermarked answers get
tiny p-values, plain ones do not. Leaves ``ctx.artifacts["teacher"]`` (a watermarking
:class:`~distillscope.teacher.Teacher`), ``["teacher_loaded"]``, ``["watermark_scheme"]`` and
``["watermark_key_file"]`` for the later acts.
"""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path

from distillscope.demo import ActResult, DemoContext

logger = logging.getLogger(__name__)

DEMO_PROMPTS = (
    "Explain why the sky is blue in a few sentences.",
    "Give three tips for writing clear emails.",
    "What is the difference between a virus and a bacterium?",
    "Write a short poem about the sea.",
    "How does compound interest work?",
    "Describe how to make a cup of tea.",
    "Why do we have seasons on Earth?",
    "What are the benefits of regular exercise?",
    "Summarise the water cycle for a child.",
    "How do I reverse a list in Python?",
    "What should I pack for a weekend hiking trip?",
    "Explain what a database index is.",
)
PREVIEW_CHARS = 40


def _scheme(ctx: DemoContext):
    """The configured watermark scheme, or one with a fresh key saved in the demo's workdir."""
    from distillscope.watermark import WatermarkKey, make_scheme, scheme_from_settings

    s = ctx.settings
    if s.watermark_key is not None or s.resolved_watermark_key_file.is_file():
        return scheme_from_settings(s), None
    path = Path(ctx.workdir) / "watermark.key"
    key = WatermarkKey.load_file(path) if path.is_file() else WatermarkKey.generate()
    if not path.is_file():
        key.save(path)
    return make_scheme(s.watermark_scheme, key, **dict(s.watermark_params)), path


def _preview(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW_CHARS else flat[:PREVIEW_CHARS - 1] + "…"


def act(ctx: DemoContext) -> ActResult:
    from distillscope.teacher import SamplingParams, Teacher, load_model

    spec = "tiny" if ctx.quick else ctx.settings.teacher
    scheme, key_file = _scheme(ctx)
    loaded = load_model(spec, settings=ctx.settings, dtype="bfloat16", device=ctx.settings.device,
                        progress=ctx.reporter)
    teacher = Teacher(loaded, watermark=scheme)
    params = SamplingParams(max_new_tokens=48 if ctx.quick else 80, seed=0)
    timings, answers = {}, {}
    for marked in (True, False):
        t0 = time.perf_counter()
        answers[marked] = teacher.generate(DEMO_PROMPTS, params, watermark=marked, batch_size=len(DEMO_PROMPTS),
                                           progress=ctx.reporter)
        timings[marked] = time.perf_counter() - t0
    detector = scheme.detector(loaded.tokenizer)
    rows, pvals = [], {True: [], False: []}
    for i, prompt in enumerate(DEMO_PROMPTS):
        for marked in (True, False):
            gen = answers[marked][i]
            det = detector.detect(list(gen.token_ids), prompt_ids=list(gen.prompt_ids))
            pvals[marked].append(det.p_value)
            rows.append((_preview(prompt) if marked else "", "yes" if marked else "no", _preview(gen.text),
                         det.n_scored, f"{det.p_value:.2e}"))
    ctx.artifacts.update(teacher=teacher, teacher_loaded=loaded, watermark_scheme=scheme)
    if key_file is not None:
        ctx.artifacts["watermark_key_file"] = key_file
    n_tokens = {m: sum(g.n_tokens for g in answers[m]) for m in answers}
    notes = (
        f"teacher {loaded.name} ({loaded.dtype}, loaded in {loaded.load_seconds:.1f}s); scheme "
        f"{scheme.config()['scheme']} key {scheme.config()['key_id']}"
        + (f" (fresh demo key in {key_file})" if key_file else ""),
        f"median p-value: watermarked {statistics.median(pvals[True]):.1e}, "
        f"plain {statistics.median(pvals[False]):.2f}; watermarked answers with p < 1e-3: "
        f"{sum(p < 1e-3 for p in pvals[True])}/{len(DEMO_PROMPTS)}, plain: "
        f"{sum(p < 1e-3 for p in pvals[False])}/{len(DEMO_PROMPTS)}",
        f"generation: {n_tokens[True] / timings[True]:.0f} tokens/s watermarked, "
        f"{n_tokens[False] / timings[False]:.0f} tokens/s plain",
    )
    return ActResult(title="1. The teacher answers, with and without the watermark",
                     columns=("prompt", "watermark", "answer", "tokens scored", "p-value"),
                     rows=tuple(rows), notes=notes)
