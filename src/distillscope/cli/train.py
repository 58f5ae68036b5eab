"""``distillscope train`` and ``distillscope eval``: thin wrappers over distill.training / distill.evaluation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from distillscope.cli.common import RichProgress, console, print_table, state


def _quiet_transformers() -> None:
    """Our own progress bars replace transformers' shard/weight bars in the terminal."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("eval")(eval_command)


def train_command(
    ctx: typer.Context,
    store: Path = typer.Argument(..., help="Harvest store directory (from `distillscope harvest`)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory: an HF model directory plus checkpoints."),
    mode: str = typer.Option("kd", help="sft (teacher answers only) or kd (plus the stored top-k log-probs)."),
    kd_loss: str = typer.Option("forward", help="KD loss: forward (KL), reverse (KL) or jsd."),
    ce_weight: Optional[float] = typer.Option(None, help="Cross-entropy weight [default: 1.0 sft, 0.5 kd]."),
    kd_weight: Optional[float] = typer.Option(None, help="KD-loss weight [default: 0 sft, 0.5 kd]."),
    temperature: float = typer.Option(1.0, help="KD temperature."),
    fallback_sft: bool = typer.Option(False, "--fallback-sft",
                                      help="If cross-tokenizer KD is impossible (no teacher tokenizer), "
                                           "train SFT instead of failing."),
    teacher_tokenizer: Optional[str] = typer.Option(None, help="Teacher tokenizer (spec or dir) for "
                                                               "cross-tokenizer KD [default: from the store]."),
    student: str = typer.Option("llama", help="'llama' (a fresh small Llama), a bundled model (gemma3-270m, "
                                              "smollm2), an HF model directory or a .gguf file."),
    tokenizer: Optional[str] = typer.Option(None, help="Tokenizer spec or dir [default: the student's, "
                                                       "else the teacher's, smollm2]."),
    prompt_format: str = typer.Option("auto", help="auto (chat template, else plain User:/Assistant:), chat "
                                                   "(require a template) or plain."),
    hidden_size: int = typer.Option(256, help="Hidden size of a fresh Llama student."),
    layers: int = typer.Option(4, help="Layers of a fresh Llama student."),
    heads: int = typer.Option(4, help="Attention heads of a fresh Llama student."),
    student_layers: Optional[int] = typer.Option(None, help="Keep only the first N layers of a pretrained student."),
    lora_r: int = typer.Option(0, help="LoRA rank (0: off); adapters are merged into the saved student."),
    lora_alpha: Optional[float] = typer.Option(None, help="LoRA alpha [default: 2 * rank]."),
    train_top_layers: Optional[int] = typer.Option(None, help="Train only the top N layers of a pretrained "
                                                              "student (the rest frozen)."),
    gradient_checkpointing: bool = typer.Option(False, "--gradient-checkpointing",
                                                help="Recompute activations in the backward pass (less memory)."),
    restrict_vocab: bool = typer.Option(False, "--restrict-vocab",
                                        help="Softmax over the training data's tokens only (faster; see docs)."),
    bf16: Optional[bool] = typer.Option(None, "--bf16/--no-bf16",
                                        help="bfloat16 autocast [default: on for CUDA, or a pretrained "
                                             "student on a CPU with AVX512-BF16/AMX]."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate [default: 5e-4 fresh, 2e-4 LoRA, "
                                                          "5e-5 full fine-tuning]."),
    epochs: float = typer.Option(3.0, help="Passes over the data (ignored with --max-steps)."),
    max_steps: int = typer.Option(-1, help="Stop after this many optimizer steps (-1: use --epochs)."),
    max_seconds: Optional[float] = typer.Option(None, help="Stop (and save) after this much training time."),
    batch_size: int = typer.Option(8, help="Sequences per device per step."),
    grad_accum: int = typer.Option(1, help="Gradient accumulation steps."),
    max_length: int = typer.Option(512, help="Longest training sequence in tokens."),
    max_records: Optional[int] = typer.Option(None, help="Train on at most this many records."),
    heldout_fraction: float = typer.Option(0.1, help="Share of records kept out for `distillscope eval`."),
    seed: int = typer.Option(0, help="Random seed (init, data order)."),
    save_steps: int = typer.Option(200, help="Checkpoint every N steps."),
    resume: bool = typer.Option(False, "--resume", help="Resume from the latest checkpoint in --out."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the result as JSON here."),
) -> None:
    """Train a student on a harvest store by SFT or top-k knowledge distillation."""
    from distillscope.distill.evaluation import format_parameters
    from distillscope.distill.training import DistillConfig, checkpointing_field, train

    state(ctx)
    _quiet_transformers()
    cfg = DistillConfig(store=str(store), output_dir=str(out), mode=mode, kd_loss=kd_loss, ce_weight=ce_weight,
                        kd_weight=kd_weight, temperature=temperature, fallback_to_sft=fallback_sft,
                        teacher_tokenizer=teacher_tokenizer, student=student, tokenizer=tokenizer,
                        prompt_format=prompt_format, hidden_size=hidden_size, layers=layers, heads=heads,
                        student_layers=student_layers, lora_r=lora_r, lora_alpha=lora_alpha,
                        train_top_layers=train_top_layers, **checkpointing_field(gradient_checkpointing),
                        restrict_vocab=restrict_vocab, bf16=bf16, learning_rate=lr, num_train_epochs=epochs,
                        max_steps=max_steps, max_seconds=max_seconds, per_device_train_batch_size=batch_size,
                        gradient_accumulation_steps=grad_accum, max_length=max_length, max_records=max_records,
                        heldout_fraction=heldout_fraction, seed=seed, save_steps=save_steps, resume=resume)
    res = train(cfg, progress=RichProgress())
    last = res.history[-1] if res.history else None
    kd = "" if res.mode != "kd" else f" ({res.kd_loss}, {res.kd_alignment}-aligned, {res.aligned_share:.0%} of positions)"
    rows = [("mode", res.mode + kd + (" (fell back from kd)" if res.fell_back else "")),
            ("steps / epochs", f"{res.steps} / {res.epochs:.2f}"),
            ("final loss (ce, kd)", "—" if last is None else
             f"{last.loss:.4f} ({last.ce:.4f}, {'—' if last.kd is None else f'{last.kd:.4f}'})"),
            ("records (held out)", f"{res.train_records} ({res.heldout_records})"),
            ("teacher tokens", f"{res.teacher_tokens:,}"),
            ("parameters (trained)", f"{format_parameters(res.parameters)} ({format_parameters(res.trainable_parameters)})"),
            ("time, tokens/s", f"{res.seconds:.0f}s, {res.tokens_per_second:,.0f}"), ("student", res.output_dir)]
    print_table("distillscope train", ("", "value"), rows)
    if json_out:
        json_out.write_text(json.dumps(res.to_dict(), indent=2))


def eval_command(
    ctx: typer.Context,
    student: str = typer.Argument(..., help="Student: an HF model directory (e.g. from `distillscope train`)."),
    store: Path = typer.Option(..., "--store", help="Harvest store; its held-out records are scored."),
    teacher: Optional[str] = typer.Option(None, help="Teacher spec or directory [default: the teacher setting]."),
    baseline: Optional[str] = typer.Option(None, help="The student before training (e.g. gemma3-270m), scored "
                                                      "as 'base' [default: the student's pretrained base, if any]."),
    compare: list[str] = typer.Option([], "--compare", help="More students to score, as ROLE=DIR "
                                                            "(e.g. sft=runs/student-sft); repeatable."),
    max_records: int = typer.Option(64, help="Score at most this many held-out records."),
    tasks_per_category: int = typer.Option(30, help="Built-in task items per category (4 categories)."),
    max_new_tokens: int = typer.Option(24, help="Tokens generated per task answer."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the report as JSON here."),
) -> None:
    """Compare a student with its teacher (and its base model before training): answer perplexity,
    top-1 agreement, task accuracy, instruction following, cost."""
    from distillscope.distill.evaluation import EvalReport, evaluate
    from distillscope.distill.tasks import builtin_tasks

    settings = state(ctx).settings()
    _quiet_transformers()
    from distillscope.errors import ConfigError

    others = []
    for item in compare:
        role, sep, path = item.partition("=")
        if not sep or not role or not path:
            raise ConfigError(f"--compare {item!r} is not ROLE=DIR", hint="e.g. --compare sft=runs/student-sft")
        others.append((role, path))
    if baseline is None:
        cfg_path = Path(student) / "distill_config.json"
        base = json.loads(cfg_path.read_text()).get("student") if cfg_path.is_file() else None
        baseline = base if base and base != "llama" else None
    report = evaluate(student, teacher or settings.teacher, store, baseline=baseline, others=others,
                      max_records=max_records,
                      tasks=builtin_tasks(tasks_per_category), max_new_tokens=max_new_tokens, settings=settings,
                      progress=RichProgress(transient=True))
    print_table(f"student vs teacher: {report.heldout_records} held-out answers ({report.answer_tokens:,} tokens), "
                f"{report.tasks} tasks", EvalReport.COLUMNS, report.rows())
    if json_out:
        json_out.write_text(json.dumps(report.to_dict(), indent=2))
        console.print(f"report written to {json_out}")
