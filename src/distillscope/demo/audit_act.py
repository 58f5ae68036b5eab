"""Demo act: prove it. Audit the distilled student beside a control student and write the report.

The control of a pretrained student (Gemma-3-270M + LoRA) is its own base model before it saw our
outputs: independent of our key, same tokenizer and architecture. A student trained from scratch
(``--quick``) gets a control trained the same way (the distillation act's ``train_fn``, SFT) on the
first prompts of the harvest answered by the independent reference model (``tiny:3``) instead. The reference is loaded once (bfloat16) and, with act 1's teacher, also
scores the passive test, so no model is loaded twice. The verdict comes from the radioactivity
tests; passive attribution is ranked against the zoo shipped for the bundled teacher and reference
(``--quick``: six random-init tiny models) and shown as corroboration.
The watermarked corpus is what the gateway served to the harvesting account, exported from our own
request log (``["gateway_engine"]``; the harvest store when no gateway ran).
Uses ``ctx.artifacts["student_path"]``, ``["harvest_store"]``, ``["watermark_scheme"]``,
``["train_fn"]`` and ``["teacher_loaded"]`` from earlier acts; leaves ``["audit_result"]``,
``["audit_report"]`` and ``["reference_loaded"]``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from distillscope.demo import ActResult, DemoContext

logger = logging.getLogger(__name__)

FULL = dict(reference="gemma3-270m", dtype="bfloat16", control_prompts=64, max_tokens=48, train_seconds=600.0,
            audit_prompts=32)
QUICK = dict(reference="tiny:3", dtype="float32", control_prompts=16, max_tokens=16, train_seconds=8.0,
             audit_prompts=12)


def _store_prompts(store: Path, limit: int) -> list[str]:
    prompts: list[str] = []
    with (store / "records.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("status") == "ok" and rec.get("prompt") and rec["prompt"] not in prompts:
                prompts.append(rec["prompt"])
            if len(prompts) >= limit:
                break
    return prompts


def _served_corpus(ctx: DemoContext) -> Path | None:
    """What our gateway served to the harvesting account, exported from our own request log (with the
    watermark key id of every answer): the provider's evidence, not the rival's harvest files."""
    engine = ctx.artifacts.get("gateway_engine")
    if engine is None:
        return None
    from distillscope.demo.distill_act import HARVEST_ACCOUNT
    from distillscope.errors import DistillscopeError
    from distillscope.gateway.accounts import AccountStore
    from distillscope.gateway.requestlog import RequestLog

    out = ctx.workdir / f"served-to-{HARVEST_ACCOUNT}.jsonl"
    try:
        account = AccountStore(engine).get_account(HARVEST_ACCOUNT).account_id
        n = RequestLog(engine).export(out, format="jsonl", account_id=account)
    except DistillscopeError:
        logger.warning("could not export the harvesting account's log; auditing against the harvest", exc_info=True)
        return None
    return out if n else None


def _reference(ctx: DemoContext, plan: dict[str, Any]) -> Any:
    """The reference model, loaded once: it answers the control's prompts and scores the passive test."""
    from distillscope.teacher import load_model

    if ctx.artifacts.get("reference_loaded") is None:
        ctx.artifacts["reference_loaded"] = load_model(plan["reference"], settings=ctx.settings, dtype=plan["dtype"],
                                                       progress=ctx.reporter)
    return ctx.artifacts["reference_loaded"]


def _train_control(ctx: DemoContext, plan: dict[str, Any], store: Path) -> Path:
    """Answer the built-in prompts with the reference model and train a control student on them."""
    from distillscope.demo.distill_act import harvest_in_process, train_student
    from distillscope.teacher import Teacher

    control_store, out = ctx.workdir / "control-harvest", ctx.workdir / "control-student"
    prompts = _store_prompts(store, plan["control_prompts"])
    harvest_in_process(Teacher(_reference(ctx, plan)), prompts, control_store, max_tokens=plan["max_tokens"],
                       logprobs=1, batch_size=32, progress=ctx.reporter)
    train_fn = ctx.artifacts.get("train_fn") or (lambda s, o, **kw: train_student(s, o, quick=ctx.quick, **kw))
    train_fn(control_store, out, mode="sft", max_seconds=plan["train_seconds"], progress=ctx.reporter)
    return out


def _control(ctx: DemoContext, plan: dict[str, Any], store: Path) -> tuple[str, str]:
    """The control: a pretrained student's own base model, before it saw our outputs (independent of our
    key, same tokenizer and architecture as the student); else a student of the reference's answers."""
    base = getattr(ctx.artifacts.get("train_result"), "student", None)
    if base and base != "llama":
        return f"local:{base}", f"the student's own base model ({base}) before it saw our outputs"
    return f"local:{_train_control(ctx, plan, store)}", f"a student of {plan['reference']}'s answers"


def _quick_zoo(ctx: DemoContext, plan: dict[str, Any], teacher_spec: str) -> Path:
    """``--quick``: a zoo of six random-init tiny models for the tiny teacher and reference (the full demo
    uses the zoo shipped for the bundled teacher and reference)."""
    from distillscope.audit import ZooCandidate, build_zoo
    from distillscope.teacher import load_model

    teacher = ctx.artifacts.get("teacher_loaded") or load_model(teacher_spec, settings=ctx.settings, dtype="float32")
    prompts = _store_prompts(Path(ctx.artifacts["harvest_store"]), 8)
    zoo = build_zoo([ZooCandidate(f"local:tiny:{40 + i}", "scratch", "llama", "random init") for i in range(6)],
                    prompts=prompts, teacher_loaded=teacher, reference_loaded=[_reference(ctx, plan)],
                    max_new_tokens=plan["max_tokens"], settings=ctx.settings, progress=ctx.reporter)
    return zoo.save(ctx.workdir / "quick-zoo.json")


def act(ctx: DemoContext) -> ActResult:
    from distillscope.audit import AuditConfig, run_audit, write_report

    title = "5. Audit: was the student trained on our outputs?"
    student, store = ctx.artifacts.get("student_path"), ctx.artifacts.get("harvest_store")
    scheme = ctx.artifacts.get("watermark_scheme")
    if student is None or store is None:
        return ActResult(title, ("model", "verdict"), (), ("skipped: the distillation act left no student",))
    plan = QUICK if ctx.quick else FULL
    control, control_words = _control(ctx, plan, Path(store))
    served = _served_corpus(ctx)
    teacher_spec = "tiny" if ctx.quick else ctx.settings.teacher
    config = AuditConfig(
        suspect=f"local:{student}", control=control, corpus=str(served or store),
        teacher=teacher_spec, references=(plan["reference"],),
        max_prompts=plan["audit_prompts"], max_new_tokens=plan["max_tokens"], seed=0,
        min_window_df=1 if ctx.quick else 2, zoo_prompts=None if ctx.quick else 16,
        reading_texts=None if ctx.quick else 32,
        zoo=str(_quick_zoo(ctx, plan, teacher_spec)) if ctx.quick else None)
    loaded = {plan["reference"]: _reference(ctx, plan)}
    if ctx.artifacts.get("teacher_loaded") is not None:   # act 1's teacher scores the passive test
        loaded[config.teacher] = ctx.artifacts["teacher_loaded"]
    result = run_audit(config, settings=ctx.settings, scheme=scheme, progress=ctx.reporter,
                       command="distillscope demo" + (" --quick" if ctx.quick else ""), loaded=loaded)
    html, js = write_report(result, ctx.workdir / "audit-report.html")
    ctx.artifacts.update(audit_result=result, audit_report=html)
    rows = []
    for m in (result.suspect, result.control):
        cells = {t.test: (f"{t.p_value:.2g} (n={t.n_scored})" if t.ran else t.status) for t in m.tests}
        passive = m.test("passive")
        if passive is not None and passive.ran:
            cells["passive"] = f"{passive.p_value:.2g} (rank {passive.details['rank']}/{passive.details['zoo_members'] + 1})"
        rows.append((m.role, cells.get("open", "—"), cells.get("blackbox", "—"), f"{m.combined_p:.2g}",
                     cells.get("passive", "—")))
    source = ("what the gateway served to the harvesting account, from our request log" if served
              else "the harvest store")
    notes = (f"verdict on the student: {result.verdict.label} — {result.verdict.summary}",
             "verdict p: the radioactivity tests (Holm), the only ones whose null is 'independent of our key'",
             result.verdict.corroboration or "passive attribution: not run (no zoo for this teacher)",
             f"control ({control_words}): radioactivity p = {result.control.combined_p:.2g}, "
             f"{'not significant' if result.control.combined_p > config.control_alpha else 'significant'}",
             f"evidence report: {html} (JSON: {js})",
             f"our corpus: {source} ({config.corpus}; key id "
             f"{scheme.key.key_id if scheme is not None else 'from settings'})")
    notes += tuple(f"note: {p}" for p in result.verdict.problems)
    return ActResult(title, ("model", "open p", "black-box p", "verdict p", "zoo p"), tuple(rows), notes)
