"""Demo act: the rival distils the teacher. Harvest a few hundred answers with top-k
log-probabilities, fine-tune its own pretrained base model (Gemma-3-270M, LoRA, cross-tokenizer KD)
on CPU, and compare it before and after with the teacher.

Harvesting goes through the running gateway when an earlier act left one
(``ctx.artifacts["gateway_url"]`` and an account store in ``["gateway_admin"]`` to create a key
with); otherwise the teacher answers in process and the answers are written to a harvest store of
the same format. Leaves ``ctx.artifacts["harvest_store"]``, ``["student_path"]``,
``["train_result"]``, ``["eval_report"]`` and ``["train_fn"]`` (``train_fn(store, out, **fields)``
trains another student the same way, e.g. a control model for the audit).
"""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path
from typing import Any

from distillscope.demo import ActResult, DemoContext

logger = logging.getLogger(__name__)

HARVEST_ACCOUNT = "distill-demo"   # the rival's account on the demo gateway (the audit exports its log)

# The realistic rival: its own pretrained base model (Gemma-3-270M base, another tokenizer than the
# teacher's, no chat template: it learns the plain User:/Assistant: format) with LoRA adapters, trained by
# cross-tokenizer top-k KD on the harvest. One pass at a LoRA learning rate (19 steps of 8 answers);
# ``train_seconds`` stops it earlier on a loaded machine so the demo keeps to its budget. The evaluation
# scores the teacher, the base model before training and the student on the same held-out answers and
# tasks. ``--quick`` keeps a tiny from-scratch student.
FULL = dict(prompts=160, max_tokens=48, logprobs=5, concurrency=32,
            student=dict(student="gemma3-270m", lora_r=16), baseline="gemma3-270m",
            epochs=1.0, learning_rate=5e-4, train_seconds=200.0, tasks_per_category=8, eval_records=24)
QUICK = dict(prompts=24, max_tokens=16, logprobs=5, concurrency=8, student=dict(hidden_size=32, layers=2, heads=2),
             baseline=None, epochs=2.0, learning_rate=None, train_seconds=10.0, tasks_per_category=1, eval_records=32)


def train_student(store: str | Path, out: str | Path, *, quick: bool = False, progress: Any = None,
                  **fields: Any) -> Any:
    """Train a student on ``store`` into ``out`` with the demo's sizes (``fields`` override)."""
    from distillscope.distill.training import DistillConfig, train

    plan = QUICK if quick else FULL
    base = dict(mode="kd", num_train_epochs=plan["epochs"], learning_rate=plan["learning_rate"],
                max_seconds=plan["train_seconds"], max_length=256, per_device_train_batch_size=8, save_steps=10_000,
                logging_steps=5, **plan["student"])
    return train(DistillConfig(store=str(store), output_dir=str(out), **{**base, **fields}), progress=progress)


def _student_words(result: Any) -> str:
    from distillscope.distill.evaluation import format_parameters

    if result.student == "llama":
        return f"a {format_parameters(result.parameters)}-parameter student from scratch"
    return (f"{result.student} ({format_parameters(result.parameters)} parameters, "
            f"{format_parameters(result.trainable_parameters)} trained)")


def _gateway_key(ctx: DemoContext) -> str | None:
    """An API key for the demo's harvesting account, created through the gateway's account store."""
    admin = ctx.artifacts.get("gateway_admin")
    if ctx.artifacts.get("harvest_api_key"):
        return ctx.artifacts["harvest_api_key"]
    if admin is None or not hasattr(admin, "create_key"):
        return None
    try:
        if hasattr(admin, "create_account"):
            admin.create_account(HARVEST_ACCOUNT)
        created = admin.create_key(HARVEST_ACCOUNT)
    except Exception:  # a demo must go on: fall back to harvesting in process
        logger.warning("could not create a gateway key for the harvest; answering in process", exc_info=True)
        return None
    return created[0] if isinstance(created, tuple) else getattr(created, "key", created)


def _harvest_via_gateway(ctx: DemoContext, prompts: list, store: Path, plan: dict) -> str | None:
    """Harvest through the demo's gateway; returns how the gateway batched it (None: not harvested)."""
    url, key = ctx.artifacts.get("gateway_url"), _gateway_key(ctx)
    if not url or not key:
        return None
    from collections import Counter

    from distillscope.distill.harvest import HarvestConfig, harvest

    backend = getattr(ctx.artifacts.get("gateway_admin"), "backend", None)
    before = Counter(getattr(backend, "batch_counts", {}))
    model = ctx.artifacts.get("gateway_model") or ("tiny" if ctx.quick else ctx.settings.teacher)
    try:
        summary = harvest(HarvestConfig(base_url=url, model=model, api_keys=[key], max_tokens=plan["max_tokens"],
                                        logprobs=plan["logprobs"], concurrency=plan["concurrency"],
                                        request_timeout=300, max_retries=2),
                          prompts, store, progress=ctx.reporter)
    except Exception:
        logger.warning("harvest through the gateway failed; answering in process", exc_info=True)
        return None
    logger.info("harvested through the gateway: %s", summary)
    batches = Counter(getattr(backend, "batch_counts", {})) - before
    return ", ".join(f"{n}×{size}" for size, n in sorted(batches.items(), reverse=True)) or "n/a"


def harvest_in_process(teacher: Any, prompts: list, store: str | Path, *, max_tokens: int, logprobs: int,
                       seed: int = 0, batch_size: int = 8, progress: Any = None) -> None:
    """Answer ``prompts`` with an in-process :class:`~distillscope.teacher.Teacher` and write the
    answers (with top-k ids) as a harvest store, exactly as ``distillscope harvest`` would."""
    from distillscope.distill.store import HarvestRecord, HarvestStore, record_id
    from distillscope.teacher import SamplingParams

    texts = [p.prompt if hasattr(p, "prompt") else str(p) for p in prompts]
    params = SamplingParams(max_new_tokens=max_tokens, temperature=0.7, seed=seed, logprobs=logprobs)
    gens = teacher.generate(texts, params, batch_size=batch_size, progress=progress)
    tok, name = teacher.loaded.tokenizer, teacher.loaded.name
    hs = HarvestStore(store)
    hs.create({"endpoint": "in-process", "model": name,
               "params": {"max_tokens": max_tokens, "temperature": 0.7, "logprobs": logprobs}})
    rows = []
    for i, (text, g) in enumerate(zip(texts, gens)):
        messages = [{"role": "user", "content": text}]
        rows.append(HarvestRecord(
            id=record_id(messages, name, {"max_tokens": max_tokens, "n": i}), status="ok",
            prompt=text, messages=tuple(messages), completion=g.text, finish_reason=g.finish_reason,
            tokens=tuple(tok.convert_ids_to_tokens(list(g.token_ids))), token_ids=g.token_ids,
            token_logprobs=g.token_logprobs, top_logprob_ids=g.top_logprobs,
            usage={"prompt_tokens": len(g.prompt_ids), "completion_tokens": len(g.token_ids)}, attempts=1))
    with hs.open_writer() as writer:
        writer.append(rows)


def _harvest_in_process(ctx: DemoContext, prompts: list, store: Path, plan: dict) -> None:
    from distillscope.teacher import Teacher, load_model

    teacher = ctx.artifacts.get("teacher") or Teacher(load_model("tiny" if ctx.quick else ctx.settings.teacher,
                                                                 settings=ctx.settings))
    harvest_in_process(teacher, prompts, store, max_tokens=plan["max_tokens"], logprobs=plan["logprobs"],
                       progress=ctx.reporter)


def act(ctx: DemoContext) -> ActResult:
    from distillscope.distill import PromptGenerator
    from distillscope.distill.evaluation import EvalReport, evaluate
    from distillscope.distill.tasks import builtin_tasks

    plan = QUICK if ctx.quick else FULL
    store, out = ctx.workdir / "harvest", ctx.workdir / "student"
    prompts = PromptGenerator(seed=0).generate(plan["prompts"])
    t0 = time.perf_counter()
    batches = _harvest_via_gateway(ctx, prompts, store, plan)
    via = f"the gateway ({plan['concurrency']} requests in flight; generate batches {batches})"
    if batches is None:
        via = "the in-process teacher"
        _harvest_in_process(ctx, prompts, store, plan)
    harvest_s = time.perf_counter() - t0
    result = train_student(store, out, quick=ctx.quick, progress=ctx.reporter)
    teacher = ctx.artifacts.get("teacher_loaded") or ("tiny" if ctx.quick else ctx.settings.teacher)
    report = evaluate(str(out), teacher, store, baseline=plan["baseline"],
                      tasks=builtin_tasks(plan["tasks_per_category"]), max_records=plan["eval_records"],
                      settings=ctx.settings,
                      progress=ctx.reporter)
    ctx.artifacts.update(harvest_store=store, student_path=out, train_result=result, eval_report=report,
                         train_fn=functools.partial(train_student, quick=ctx.quick))
    notes = (f"harvested {result.train_records + result.heldout_records} answers with top-{plan['logprobs']} "
             f"log-probs through {via} in {harvest_s:.0f}s",
             f"trained {_student_words(result)} ({result.mode}"
             f"{f', {result.kd_loss}, {result.kd_alignment}-aligned' if result.mode == 'kd' else ''}, "
             f"{result.epochs:.1f} epochs, {result.steps} steps) on "
             f"{result.teacher_tokens:,} teacher tokens in {result.seconds:.0f}s "
             f"({result.tokens_per_second:,.0f} tokens/s); student in {out}")
    return ActResult("4. Distillation: a student trained on the teacher's answers (before and after)",
                     EvalReport.COLUMNS,
                     tuple(report.rows()), notes)
