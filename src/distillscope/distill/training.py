"""Train a student on a harvest store: sequence-level (SFT) or token-level (top-k KD) distillation.

:class:`DistillConfig` holds every training choice; :class:`DistillTrainer` is a
``transformers.Trainer`` whose ``compute_loss`` mixes answer-token cross-entropy with a KD term
against the teacher's stored top-k log-probabilities (:mod:`distillscope.distill.losses`) and
logs each component separately. Because it is a plain ``Trainer``, the same code runs on several
GPUs under ``accelerate launch``. :func:`train` is the one entry point; the output directory is a
normal HF model directory plus ``distill_config.json`` and ``train_result.json``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback

from distillscope import __version__
from distillscope.errors import ConfigError, DistillError, ModelError
from distillscope.distill.kd_data import (KDCollator, build_examples, load_records, require_topk,
                                          split_heldout)
from distillscope.distill.losses import KD_LOSSES, answer_cross_entropy, student_log_probs
from distillscope.distill.student import build_student, check_tokenizer, count_parameters, load_student_tokenizer
from distillscope.progress import Progress, ensure_progress

logger = logging.getLogger(__name__)

CONFIG_FILE = "distill_config.json"
RESULT_FILE = "train_result.json"


@dataclass
class DistillConfig:
    """Every choice of a distillation run. Fields left ``None`` are resolved in ``__post_init__``.

    Data
        store (str): harvest store directory (``manifest.json`` + ``records.jsonl``). Required.
        output_dir (str): where the student (an HF model directory) and checkpoints go. Required.
        heldout_fraction (float, 0.1): share of records (by a hash of their id) kept out of training
            for ``evaluate``.
        max_records (int | None, None): train on at most this many records (store order); None = all.
        max_length (int, 512): longest training sequence (prompt + answer) in tokens.
    Objective
        mode (str, "kd"): ``"sft"`` (cross-entropy on the teacher's answer tokens) or ``"kd"``
            (cross-entropy mixed with a KD loss on the stored top-k log-probabilities).
        kd_loss (str, "forward"): ``"forward"`` KL, ``"reverse"`` KL or ``"jsd"``.
        ce_weight (float | None, None): weight of the cross-entropy; default 1.0 (sft) / 0.5 (kd).
        kd_weight (float | None, None): weight of the KD loss; default 0.0 (sft) / 0.5 (kd).
        temperature (float, 1.0): KD temperature (see ``losses``).
        jsd_beta (float, 0.5): mixture weight of the JSD.
        fallback_to_sft (bool, False): when the student tokenizer does not match the stored
            top-k data, train sequence-level on the completion text (with a warning) instead of
            failing.
    Student
        student (str, "llama"): ``"llama"`` (fresh small Llama, sized below) or an HF model dir.
        tokenizer (str | None, None): tokenizer spec or dir; default the student dir, else "smollm2".
        hidden_size (int, 256), layers (int, 4), heads (int, 4): size of the fresh Llama student.
        intermediate_size (int | None, None): MLP width; default ``2 * hidden_size``.
    Optimisation
        learning_rate (float | None, None): default 5e-4 for a fresh student, 5e-5 for a loaded one.
        epochs (float, 3.0): passes over the data (ignored when ``max_steps > 0``).
        max_steps (int, -1): stop after this many optimizer steps (-1: use ``epochs``).
        max_seconds (float | None, None): stop (and save) after this much training time.
        batch_size (int, 8): sequences per device per step; grad_accum (int, 1): steps accumulated.
        warmup_ratio (float, 0.05): share of steps with a linear warm-up.
        weight_decay (float, 0.0); lr_scheduler (str, "cosine").
        bf16 (bool | None, None): bfloat16 mixed precision; default on when a CUDA GPU supports it.
        seed (int, 0): seeds model init, data order and dropout.
    Checkpoints and logging
        save_steps (int, 200): checkpoint every this many steps; save_total_limit (int, 2).
        logging_steps (int, 10): log the loss components every this many steps.
        resume (bool | str, False): resume from the latest checkpoint in ``output_dir`` (True) or
            from the given checkpoint directory.
    """

    store: str
    output_dir: str
    heldout_fraction: float = 0.1
    max_records: int | None = None
    max_length: int = 512
    mode: Literal["sft", "kd"] = "kd"
    kd_loss: Literal["forward", "reverse", "jsd"] = "forward"
    ce_weight: float | None = None
    kd_weight: float | None = None
    temperature: float = 1.0
    jsd_beta: float = 0.5
    fallback_to_sft: bool = False
    student: str = "llama"
    tokenizer: str | None = None
    hidden_size: int = 256
    layers: int = 4
    heads: int = 4
    intermediate_size: int | None = None
    learning_rate: float | None = None
    epochs: float = 3.0
    max_steps: int = -1
    max_seconds: float | None = None
    batch_size: int = 8
    grad_accum: int = 1
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    lr_scheduler: str = "cosine"
    bf16: bool | None = None
    seed: int = 0
    save_steps: int = 200
    save_total_limit: int = 2
    logging_steps: int = 10
    resume: bool | str = False

    def __post_init__(self) -> None:
        self.store, self.output_dir = str(self.store), str(self.output_dir)
        if self.mode not in ("sft", "kd"):
            raise ConfigError(f"mode {self.mode!r} is not one of sft, kd")
        if self.kd_loss not in KD_LOSSES:
            raise ConfigError(f"kd_loss {self.kd_loss!r} is not one of {', '.join(KD_LOSSES)}")
        if self.ce_weight is None:
            self.ce_weight = 1.0 if self.mode == "sft" else 0.5
        if self.kd_weight is None:
            self.kd_weight = 0.0 if self.mode == "sft" else 0.5
        if self.tokenizer is None:
            self.tokenizer = self.student if self.student != "llama" else "smollm2"
        if self.intermediate_size is None:
            self.intermediate_size = 2 * self.hidden_size
        if self.learning_rate is None:
            self.learning_rate = 5e-4 if self.student == "llama" else 5e-5
        if self.bf16 is None:
            self.bf16 = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
        self._check_ranges()

    def _check_ranges(self) -> None:
        checks = [("ce_weight", self.ce_weight >= 0), ("kd_weight", self.kd_weight >= 0),
                  ("temperature", self.temperature > 0), ("jsd_beta", 0 < self.jsd_beta < 1),
                  ("heldout_fraction", 0 <= self.heldout_fraction < 1), ("max_length", self.max_length >= 8),
                  ("batch_size", self.batch_size >= 1), ("grad_accum", self.grad_accum >= 1),
                  ("learning_rate", self.learning_rate > 0), ("epochs", self.epochs > 0),
                  ("save_steps", self.save_steps >= 1), ("logging_steps", self.logging_steps >= 1)]
        for name, ok in checks:
            if not ok:
                raise ConfigError(f"{name}={getattr(self, name)!r} is out of range",
                                  hint="see `distillscope train --help` for valid values")
        if self.ce_weight == 0 and self.kd_weight == 0:
            raise ConfigError("ce_weight and kd_weight are both 0: nothing to train on")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ConfigError(f"max_seconds={self.max_seconds} must be positive")
        if self.max_records is not None and self.max_records < 1:
            raise ConfigError(f"max_records={self.max_records} must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DistillConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown DistillConfig field(s): {', '.join(unknown)}")
        return cls(**data)

    def save(self, directory: str | Path, **extra: Any) -> None:
        """Write the resolved config (plus version and ``extra``) as ``distill_config.json``."""
        path = Path(directory) / CONFIG_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**self.to_dict(), **extra, "distillscope_version": __version__}, indent=2))


@dataclass(frozen=True)
class LogEntry:
    """Loss components at one logging step (``kd`` is None when no KD term was trained)."""

    step: int
    loss: float
    ce: float
    kd: float | None
    learning_rate: float | None


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced and cost."""

    output_dir: str
    mode: str                     # the mode actually trained (after any fallback)
    kd_loss: str | None
    fell_back: bool               # kd was asked for but the tokenizer check forced sft
    steps: int
    epochs: float
    train_records: int
    heldout_records: int
    teacher_tokens: int           # teacher completion tokens in the training records
    trained_tokens: int           # non-padding tokens processed (prompt + answer, all epochs)
    seconds: float
    tokens_per_second: float
    parameters: int
    final_loss: float | None
    history: tuple[LogEntry, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class DistillTrainer(Trainer):
    """``Trainer`` with the distillation objective ``ce_weight * CE + kd_weight * KD``.

    Each component is averaged over the logging window and logged as ``ce`` and ``kd`` beside
    the total ``loss``. The resolved :class:`DistillConfig` is written into every checkpoint.
    """

    loss_is_scaled_for_ga = False  # compute_loss returns a per-batch mean

    def __init__(self, *args: Any, distill_config: DistillConfig, token_level: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.distill_config = distill_config
        self.token_level = token_level
        self.tokens_seen = 0
        self._components: dict[str, list[float]] = defaultdict(list)

    def compute_loss(self, model: Any, inputs: dict[str, torch.Tensor], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        cfg = self.distill_config
        outputs, logits, targets, keep = self._answer_logits(model, inputs)
        use_kd = self.token_level and cfg.kd_weight > 0
        # One log-softmax over the vocabulary serves both terms (at T = 1 they share it exactly).
        shared = student_log_probs(logits) if use_kd and cfg.temperature == 1.0 else None
        ce = answer_cross_entropy(logits, targets, student_logprobs=shared)
        loss = cfg.ce_weight * ce
        kd = None
        if use_kd:
            topk_ids, topk_lps = inputs["topk_ids"][:, 1:][keep], inputs["topk_logprobs"][:, 1:][keep]
            mask = torch.isfinite(topk_lps).any(-1)
            extra = {"beta": cfg.jsd_beta} if cfg.kd_loss == "jsd" else {}
            kd = KD_LOSSES[cfg.kd_loss](logits, topk_ids, topk_lps, mask, cfg.temperature, student_logprobs=shared,
                                        **extra)
            loss = loss + cfg.kd_weight * kd
        if model.training:
            self.tokens_seen += int(inputs["attention_mask"].sum())
            self._components["ce"].append(float(ce.detach()))
            if kd is not None:
                self._components["kd"].append(float(kd.detach()))
        return (loss, outputs) if return_outputs else loss

    def _answer_logits(self, model: Any, inputs: dict[str, torch.Tensor]) -> tuple[Any, torch.Tensor, torch.Tensor,
                                                                                  torch.Tensor]:
        """Logits ``[N, V]`` at the N positions that predict an answer token, their targets ``[N]``
        and the ``[B, L-1]`` mask that picked them. The vocabulary projection, by far the largest
        cost for a small student, runs only on those positions when the model supports it."""
        labels = inputs["labels"][:, 1:]
        keep = labels != -100
        kwargs = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}
        if self._accepts_logits_to_keep(model):
            full = torch.zeros_like(inputs["labels"], dtype=torch.bool)
            full[:, :-1] = keep
            outputs = model(**kwargs, logits_to_keep=full)
            logits = outputs.logits.reshape(-1, outputs.logits.shape[-1])
        else:
            outputs = model(**kwargs)
            logits = outputs.logits[:, :-1][keep]
        return outputs, logits, labels[keep], keep

    @staticmethod
    def _accepts_logits_to_keep(model: Any) -> bool:
        import inspect

        inner = getattr(model, "module", model)   # DDP-wrapped under accelerate
        return "logits_to_keep" in inspect.signature(inner.forward).parameters

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        for name, values in self._components.items():
            if values:
                logs[name] = round(sum(values) / len(values), 5)
        self._components.clear()
        super().log(logs, start_time)

    def _save(self, output_dir: str | None = None, state_dict: Any = None) -> None:
        super()._save(output_dir, state_dict)
        self.distill_config.save(output_dir or self.args.output_dir, token_level=self.token_level)


class _ProgressCallback(TrainerCallback):
    """Reports optimizer steps to a :class:`distillscope.progress.Progress` and logs the losses."""

    def __init__(self, progress: Progress, description: str, max_seconds: float | None = None) -> None:
        self._progress, self._description, self._max_seconds = progress, description, max_seconds
        self._ctx: Any = None
        self._task: Any = None
        self._started = time.perf_counter()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._ctx = self._progress.task(self._description, total=state.max_steps)
        self._task = self._ctx.__enter__()
        self._started = time.perf_counter()
        if state.global_step:
            self._task.advance(state.global_step)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._task is not None:
            self._task.advance(1)
        if self._max_seconds is not None and time.perf_counter() - self._started > self._max_seconds:
            logger.info("time budget of %.0fs reached at step %d: stopping", self._max_seconds, state.global_step)
            control.should_training_stop = True

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        logger.info("step %d: %s", state.global_step, logs)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)
            self._ctx = self._task = None


class _ExampleDataset(torch.utils.data.Dataset):
    def __init__(self, examples: tuple) -> None:
        self._examples = examples

    def __len__(self) -> int:
        return len(self._examples)

    def __getitem__(self, i: int) -> Any:
        return self._examples[i]


@dataclass(frozen=True)
class _Plan:
    token_level: bool
    use_teacher_ids: bool
    fell_back: bool


def plan_training(config: DistillConfig, records: list[dict[str, Any]], tokenizer: Any) -> _Plan:
    """Decide, before any work, whether to train on the teacher's ids and top-k targets.

    Raises :class:`DistillError` for KD on a store without top-k data, or on a student whose
    tokenizer does not match the stored ids (unless ``fallback_to_sft``).
    """
    check = check_tokenizer(tokenizer, records)
    has_ids = any(r.get("token_ids") or r.get("tokens") for r in records)
    if config.mode == "sft":
        return _Plan(False, has_ids and check.compatible, False)
    require_topk(records)
    if check.compatible:
        return _Plan(True, True, False)
    if not config.fallback_to_sft:
        raise DistillError(f"the student tokenizer ({config.tokenizer}) does not match the teacher's stored "
                           f"log-probabilities: {check.reason}",
                           hint="use a student with the teacher's tokenizer, or pass --fallback-sft to train "
                                "sequence-level on the completion text")
    logger.warning("tokenizer mismatch (%s): falling back to sequence-level distillation", check.reason)
    return _Plan(False, False, True)


def train(config: DistillConfig, progress: Progress | None = None) -> TrainResult:
    """Train a student as ``config`` says; return what it produced. Checks run before any work."""
    records = load_records(config.store)
    tokenizer = load_student_tokenizer(config.tokenizer)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    plan = plan_training(config, records, tokenizer)
    train_recs, held = split_heldout(records, config.heldout_fraction)
    if config.max_records is not None:
        train_recs = train_recs[:config.max_records]
    if not train_recs:
        raise DistillError(f"no training records left in {config.store} after holding out "
                           f"{config.heldout_fraction:.0%}", hint="harvest more records or lower heldout_fraction")
    data = build_examples(train_recs, tokenizer, use_teacher_ids=plan.use_teacher_ids,
                          with_topk=plan.token_level, max_length=config.max_length)
    if not data.examples:
        raise DistillError(f"every training prompt is longer than max_length={config.max_length}",
                           hint="raise --max-length")
    model = build_student(config.student, tokenizer, hidden_size=config.hidden_size, layers=config.layers,
                          heads=config.heads, intermediate_size=config.intermediate_size,
                          max_positions=max(2048, config.max_length), seed=config.seed)
    n_embeddings = model.get_input_embeddings().num_embeddings
    if n_embeddings < len(tokenizer):
        raise ModelError(f"student {config.student} has {n_embeddings} token embeddings but tokenizer "
                         f"{config.tokenizer} has {len(tokenizer)} tokens",
                         hint="use the student's own tokenizer (leave --tokenizer unset) or a matching one")
    trainer = _make_trainer(config, plan, model, tokenizer, data.examples, progress)
    t0 = time.perf_counter()
    resume = config.resume if isinstance(config.resume, str) else (True if config.resume else None)
    if resume is True and not list(Path(config.output_dir).glob("checkpoint-*")):
        logger.warning("resume asked for but %s holds no checkpoint: starting fresh", config.output_dir)
        resume = None
    trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - t0
    trainer.save_model(config.output_dir)
    result = _result(config, plan, trainer, data, len(held), seconds, count_parameters(model))
    Path(config.output_dir, RESULT_FILE).write_text(json.dumps(result.to_dict(), indent=2))
    return result


def _make_trainer(config: DistillConfig, plan: _Plan, model: Any, tokenizer: Any, examples: tuple,
                  progress: Progress | None) -> DistillTrainer:
    use_cpu = not torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=config.output_dir, per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum, learning_rate=config.learning_rate,
        num_train_epochs=config.epochs, max_steps=config.max_steps, warmup_steps=config.warmup_ratio,
        lr_scheduler_type=config.lr_scheduler, weight_decay=config.weight_decay,
        logging_steps=config.logging_steps, save_steps=config.save_steps, save_total_limit=config.save_total_limit,
        seed=config.seed, data_seed=config.seed, bf16=config.bf16, use_cpu=use_cpu, report_to="none",
        disable_tqdm=True, remove_unused_columns=False, dataloader_num_workers=0)
    mode = "kd" if plan.token_level else "sft"
    trainer = DistillTrainer(model=model, args=args, train_dataset=_ExampleDataset(examples),
                             data_collator=KDCollator(tokenizer.pad_token_id, plan.token_level),
                             processing_class=tokenizer, distill_config=config, token_level=plan.token_level,
                             callbacks=[_ProgressCallback(ensure_progress(progress), f"training ({mode})",
                                                        config.max_seconds)])
    trainer.remove_callback(PrinterCallback)
    return trainer


def _result(config: DistillConfig, plan: _Plan, trainer: DistillTrainer, data: Any, n_held: int,
            seconds: float, parameters: int) -> TrainResult:
    history = tuple(LogEntry(int(h["step"]), float(h["loss"]), float(h.get("ce", math.nan)),
                             h.get("kd"), h.get("learning_rate"))
                    for h in trainer.state.log_history if "loss" in h)
    final = history[-1].loss if history else None
    return TrainResult(
        output_dir=config.output_dir, mode="kd" if plan.token_level else "sft",
        kd_loss=config.kd_loss if plan.token_level else None, fell_back=plan.fell_back,
        steps=trainer.state.global_step, epochs=float(trainer.state.epoch or 0.0),
        train_records=len(data.examples), heldout_records=n_held, teacher_tokens=data.teacher_tokens,
        trained_tokens=trainer.tokens_seen, seconds=round(seconds, 3),
        tokens_per_second=round(trainer.tokens_seen / seconds, 1) if seconds > 0 else 0.0,
        parameters=parameters, final_loss=final, history=history)
