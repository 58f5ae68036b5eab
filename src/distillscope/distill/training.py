"""Train a student on a harvest store: sequence-level (SFT) or token-level (top-k KD) distillation.

:class:`~distillscope.distill.config.DistillConfig` (a ``TrainingArguments``) holds every training choice; :class:`DistillTrainer` is a
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_callback import PrinterCallback

from distillscope.distill.config import CONFIG_FILE, DistillConfig, checkpointing_field  # noqa: F401 (re-exported)
from distillscope.errors import ConfigError, DistillError, ModelError
from distillscope.distill.kd_data import (KDCollator, aligned_share, build_cross_examples,
                                          build_examples, load_records, plain_chat_template, require_topk,
                                          split_heldout)
from distillscope.distill.losses import KD_LOSSES, answer_cross_entropy, student_log_probs, topk_uld
from distillscope.distill.student import (FRESH, add_lora, build_student, check_tokenizer, count_parameters,
                                          estimate_memory, freeze_below_top, load_student_tokenizer,
                                          pretrained_parameters, student_source, trainable_parameters,
                                          truncate_layers)
from distillscope.progress import Progress, ensure_progress

logger = logging.getLogger(__name__)

RESULT_FILE = "train_result.json"


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
    kd_loss: str | None           # forward / reverse / jsd (token-level), uld (cross-tokenizer), None (sft)
    fell_back: bool               # kd was asked for but no teacher tokenizer was available: sft
    steps: int
    epochs: float
    train_records: int
    heldout_records: int
    teacher_tokens: int           # teacher completion tokens in the training records
    trained_tokens: int           # non-padding tokens processed (prompt + answer, all epochs)
    seconds: float
    tokens_per_second: float
    parameters: int               # of the saved student (LoRA merged)
    final_loss: float | None
    history: tuple[LogEntry, ...] = field(default_factory=tuple)
    student: str = FRESH
    trainable_parameters: int = 0
    kd_alignment: str = "none"    # token (shared tokenizer), cross (character offsets + ULD), none (sft)
    aligned_share: float | None = None     # answer positions with teacher top-k targets
    vocab_kept: int | None = None          # restrict_vocab: tokens in the training softmax
    excluded_mass: float | None = None     # restrict_vocab: mean student mass outside them, before training
    excluded_mass_after: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class DistillTrainer(Trainer):
    """``Trainer`` with the distillation objective ``ce_weight * CE + kd_weight * KD``.

    KD is token-level (``kd_loss`` over the teacher's top-k + tail buckets) when the student shares the
    teacher's tokenizer, and ULD over character-offset aligned positions (``topk_uld``) when it does
    not. ``vocab`` (optional, sorted token ids) restricts the output softmax to those tokens. Each loss
    component is averaged over the logging window and logged as ``ce`` and ``kd`` beside ``loss``; the
    resolved :class:`DistillConfig` is written into every checkpoint.
    """

    loss_is_scaled_for_ga = False  # compute_loss returns a per-batch mean

    def __init__(self, *args: Any, distill_config: DistillConfig, token_level: bool, alignment: str = "token",
                 vocab: torch.Tensor | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.distill_config = distill_config
        self.token_level = token_level
        self.alignment = alignment if token_level else "none"
        self.tokens_seen = 0
        self._components: dict[str, list[float]] = defaultdict(list)
        self.vocab = vocab
        self._remap = None
        if vocab is not None:
            size = int(vocab.max()) + 1
            self._remap = torch.full((size,), -1, dtype=torch.long)
            self._remap[vocab] = torch.arange(len(vocab))

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
            topk_lps = inputs["topk_logprobs"][:, 1:][keep]
            mask = torch.isfinite(topk_lps).any(-1)
            if self.alignment == "cross":
                kd = topk_uld(logits, topk_lps, mask, cfg.temperature, student_logprobs=shared)
            else:
                topk_ids = inputs["topk_ids"][:, 1:][keep]
                if self._remap is not None:
                    topk_ids = self._remap[topk_ids].clamp(min=0)
                extra = {"beta": cfg.jsd_beta} if cfg.kd_loss == "jsd" else {}
                kd = KD_LOSSES[cfg.kd_loss](logits, topk_ids, topk_lps, mask, cfg.temperature,
                                            student_logprobs=shared, **extra)
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
        cost for a small student, runs only on those positions (and, with ``vocab``, only over
        those tokens: then the targets are indices into ``vocab``)."""
        labels = inputs["labels"][:, 1:]
        keep = labels != -100
        kwargs = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}
        if self.vocab is not None:
            hidden = model.get_decoder()(**kwargs).last_hidden_state[:, :-1][keep]
            return None, restricted_logits(model, hidden, self.vocab), self._remap[labels[keep]], keep
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
        if hasattr(inner, "get_base_model"):      # peft
            inner = inner.get_base_model()
        return "logits_to_keep" in inspect.signature(inner.forward).parameters

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        for name, values in self._components.items():
            if values:
                logs[name] = round(sum(values) / len(values), 5)
        self._components.clear()
        super().log(logs, start_time)

    def _save(self, output_dir: str | None = None, state_dict: Any = None) -> None:
        super()._save(output_dir, state_dict)
        self.distill_config.save(output_dir or self.args.output_dir, token_level=self.token_level,
                                 kd_alignment=self.alignment)


def restricted_logits(model: Any, hidden: torch.Tensor, vocab: torch.Tensor) -> torch.Tensor:
    """The output projection of ``hidden`` ``[N, H]`` onto the ``vocab`` rows only (``[N, len(vocab)]``),
    with the model's final logit soft-capping when it has one."""
    weight = model.get_output_embeddings().weight
    logits = torch.nn.functional.linear(hidden, weight[vocab])
    cap = getattr(getattr(model, "config", None), "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


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
    alignment: str = "none"           # token, cross, none
    teacher_tokenizer: Any = None


def _manifest(store: str) -> dict[str, Any]:
    try:
        return json.loads((Path(store) / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _teacher_tokenizer(config: DistillConfig) -> tuple[Any, str]:
    """The teacher's tokenizer for cross-tokenizer KD: ``teacher_tokenizer``, else the store manifest's
    ``tokenizer_hint`` / ``model`` (raises ModelError when none loads)."""
    manifest = _manifest(config.store)
    candidates = [config.teacher_tokenizer] if config.teacher_tokenizer else \
        [c for c in (manifest.get("tokenizer_hint"), manifest.get("model")) if c]
    errors = []
    for spec in candidates:
        try:
            return load_student_tokenizer(str(spec)), str(spec)
        except Exception as exc:  # an unknown name raises ModelError/ConfigError/OSError
            errors.append(f"{spec}: {exc}")
    raise ModelError("cannot load the teacher's tokenizer for cross-tokenizer KD"
                     + (f" ({'; '.join(errors)})" if errors else " (the store manifest names no model)"),
                     hint="pass --teacher-tokenizer SPEC_OR_DIR (e.g. smollm2), or --fallback-sft")


def plan_training(config: DistillConfig, records: list[dict[str, Any]], tokenizer: Any) -> _Plan:
    """Decide, before any work, how the student learns from the records.

    SFT trains on the teacher's ids when the tokenizers match, else on the re-tokenised text. KD is
    token-level with a matching tokenizer and cross-tokenizer (ULD, character-offset alignment) with
    another one. Raises :class:`DistillError` for KD on a store without top-k data, and
    :class:`ConfigError` for ``prompt_format="chat"`` with a student that has no chat template.
    """
    if config.prompt_format == "chat" and not getattr(tokenizer, "chat_template", None):
        raise ConfigError(f"the student tokenizer ({config.tokenizer}) has no chat template",
                          hint="use --prompt-format plain (User:/Assistant: lines, see docs/distill.md) or auto, "
                               "or a tokenizer with a chat template (--tokenizer)")
    check = check_tokenizer(tokenizer, records)
    has_ids = any(r.get("token_ids") or r.get("tokens") for r in records)
    if config.mode == "sft":
        return _Plan(False, has_ids and check.compatible, False)
    require_topk(records)
    if check.compatible:
        return _Plan(True, True, False, "token")
    try:
        teacher_tok, spec = _teacher_tokenizer(config)
    except ModelError:
        if not config.fallback_to_sft:
            raise
        logger.warning("tokenizer mismatch (%s) and no teacher tokenizer: falling back to SFT", check.reason)
        return _Plan(False, False, True)
    logger.info("student tokenizer differs from the teacher's (%s): cross-tokenizer KD (ULD) with the %s "
                "tokenizer", check.reason, spec)
    return _Plan(True, False, False, "cross", teacher_tok)


def _check_memory(config: DistillConfig) -> None:
    """Refuse, before loading weights, a pretrained student estimated not to fit in memory."""
    from distillscope.teacher.loading import _tiny_seed

    if not config.uses_pretrained or _tiny_seed(config.student) is not None:
        return                              # fresh and tiny students are small by construction
    n_params, hf_config = pretrained_parameters(student_source(config.student))
    layers = int(getattr(hf_config, "num_hidden_layers", 1) or 1)
    if config.student_layers:
        vocab = int(getattr(hf_config, "vocab_size", 0) or 0) * int(getattr(hf_config, "hidden_size", 0) or 0)
        n_params = vocab + (n_params - vocab) * config.student_layers // layers
    trainable = (n_params // 50 if config.lora_r else
                 n_params * config.train_top_layers // layers if config.train_top_layers else n_params)
    est = estimate_memory(n_params, hf_config, trainable=trainable, batch_size=config.per_device_train_batch_size,
                          max_length=config.max_length, checkpointing=config.gradient_checkpointing,
                          vocab_kept=8192 if config.restrict_vocab else None,
                          available=int(config.max_memory_gb * 2**30) if config.max_memory_gb else None)
    logger.info("student %s: %.0fM parameters, ~%.1f GiB to train (%.1f GiB available)", config.student,
                n_params / 1e6, est.total / 2**30, est.available / 2**30)
    if est.total > est.available:
        raise ModelError(f"student {config.student} ({n_params / 1e6:.0f}M parameters) needs ~{est.total / 2**30:.1f} "
                         f"GiB to train (weights {est.weights / 2**30:.1f}, optimizer {est.optimizer / 2**30:.1f}, "
                         f"activations {est.activations / 2**30:.1f}) but {est.available / 2**30:.1f} GiB are "
                         "available",
                         hint="train LoRA adapters (--lora-r 16), --gradient-checkpointing, a smaller "
                              "--batch-size or --max-length, --restrict-vocab, --student-layers N, or a "
                              "smaller student")


def _prepare_student(config: DistillConfig, tokenizer: Any) -> Any:
    model = build_student(config.student, tokenizer, hidden_size=config.hidden_size, layers=config.layers,
                          heads=config.heads, intermediate_size=config.intermediate_size,
                          max_positions=max(2048, config.max_length), seed=config.seed)
    if config.student_layers:
        truncate_layers(model, config.student_layers)
    if config.train_top_layers:
        freeze_below_top(model, config.train_top_layers)
    if config.lora_r:
        torch.manual_seed(config.seed)
        model = add_lora(model, config.lora_r, config.lora_alpha, config.lora_dropout, config.lora_targets)
    if config.gradient_checkpointing and (config.lora_r or config.train_top_layers):
        model.enable_input_require_grads()   # frozen embeddings: checkpointed blocks still need a grad path
    return model


def _training_vocab(examples: tuple, tokenizer: Any, alignment: str) -> torch.Tensor:
    """Sorted ids of every token in the training sequences (prompts and answers), the teacher's
    top-k ids (shared tokenizer) and the special tokens."""
    ids: set[int] = set(tokenizer.all_special_ids)
    for ex in examples:
        ids.update(ex.prompt_ids)
        ids.update(ex.answer_ids)
        if alignment == "token" and ex.topk_ids is not None:
            ids.update(int(i) for i in ex.topk_ids[np.isfinite(ex.topk_logprobs)].ravel())
    return torch.tensor(sorted(ids), dtype=torch.long)


@torch.no_grad()
def excluded_mass(model: Any, examples: Sequence[Any], vocab: torch.Tensor, pad_id: int) -> float:
    """Mean probability the model gives, at the answer positions of ``examples``, to tokens outside
    ``vocab``: what the restricted softmax leaves out of its normaliser."""
    was_training = model.training
    model.eval()
    batch = KDCollator(pad_id, False)(list(examples))
    keep = batch["labels"][:, 1:] != -100
    hidden = model.get_decoder()(input_ids=batch["input_ids"],
                                 attention_mask=batch["attention_mask"]).last_hidden_state[:, :-1][keep]
    logits = model.get_output_embeddings()(hidden).float()
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    inside = torch.logsumexp(logits[:, vocab], -1) - torch.logsumexp(logits, -1)
    model.train(was_training)
    return float((1.0 - inside.exp()).mean())


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
    _check_memory(config)
    if plan.alignment == "cross":
        data = build_cross_examples(train_recs, tokenizer, plan.teacher_tokenizer, max_length=config.max_length,
                                    prompt_format=config.prompt_format)
    else:
        data = build_examples(train_recs, tokenizer, use_teacher_ids=plan.use_teacher_ids,
                              with_topk=plan.token_level, max_length=config.max_length,
                              prompt_format=config.prompt_format)
    if not data.examples:
        raise DistillError(f"every training prompt is longer than max_length={config.max_length}",
                           hint="raise --max-length")
    if config.prompt_format == "plain" or not getattr(tokenizer, "chat_template", None):
        # saved with a template that renders the plain format, so every later user prompts it the same way
        tokenizer.chat_template = plain_chat_template(tokenizer)
    model = _prepare_student(config, tokenizer)
    n_embeddings = model.get_input_embeddings().num_embeddings
    if n_embeddings < len(tokenizer):
        raise ModelError(f"student {config.student} has {n_embeddings} token embeddings but tokenizer "
                         f"{config.tokenizer} has {len(tokenizer)} tokens",
                         hint="use the student's own tokenizer (leave --tokenizer unset) or a matching one")
    vocab = mass = None
    if config.restrict_vocab:
        vocab = _training_vocab(data.examples, tokenizer, plan.alignment)
        mass = excluded_mass(model, data.examples[:8], vocab, tokenizer.pad_token_id)
        logger.info("restricted softmax over %d of %d tokens; the student's mass outside them: %.2f%%",
                    len(vocab), n_embeddings, 100 * mass)
    trainer = _make_trainer(config, plan, model, tokenizer, data.examples, progress, vocab)
    t0 = time.perf_counter()
    resume = config.resume if isinstance(config.resume, str) else (True if config.resume else None)
    if resume is True and not list(Path(config.output_dir).glob("checkpoint-*")):
        logger.warning("resume asked for but %s holds no checkpoint: starting fresh", config.output_dir)
        resume = None
    trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - t0
    mass_after = excluded_mass(model, data.examples[:8], vocab, tokenizer.pad_token_id) if vocab is not None else None
    trainable = trainable_parameters(model)
    saved = _save_final(trainer, config, tokenizer)
    result = _result(config, plan, trainer, data, len(held), seconds, count_parameters(saved),
                     trainable=trainable, vocab=vocab, mass=mass, mass_after=mass_after)
    Path(config.output_dir, RESULT_FILE).write_text(json.dumps(result.to_dict(), indent=2))
    return result


def _save_final(trainer: DistillTrainer, config: DistillConfig, tokenizer: Any) -> Any:
    """Save the student as a plain HF model directory (LoRA adapters merged into the weights)."""
    model = trainer.model
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
        model.save_pretrained(config.output_dir)
        tokenizer.save_pretrained(config.output_dir)
        config.save(config.output_dir, token_level=trainer.token_level, kd_alignment=trainer.alignment)
    else:
        trainer.save_model(config.output_dir)
    return model


def _make_trainer(config: DistillConfig, plan: _Plan, model: Any, tokenizer: Any, examples: tuple,
                  progress: Progress | None, vocab: torch.Tensor | None = None) -> DistillTrainer:
    mode = "kd" if plan.token_level else "sft"
    trainer = DistillTrainer(model=model, args=config, train_dataset=_ExampleDataset(examples),
                             data_collator=KDCollator(tokenizer.pad_token_id, plan.token_level),
                             processing_class=tokenizer, distill_config=config, token_level=plan.token_level,
                             alignment=plan.alignment, vocab=vocab,
                             callbacks=[_ProgressCallback(ensure_progress(progress), f"training ({mode})",
                                                        config.max_seconds)])
    trainer.remove_callback(PrinterCallback)
    return trainer


def _result(config: DistillConfig, plan: _Plan, trainer: DistillTrainer, data: Any, n_held: int,
            seconds: float, parameters: int, *, trainable: int, vocab: torch.Tensor | None,
            mass: float | None, mass_after: float | None) -> TrainResult:
    history = tuple(LogEntry(int(h["step"]), float(h["loss"]), float(h.get("ce", math.nan)),
                             h.get("kd"), h.get("learning_rate"))
                    for h in trainer.state.log_history if "loss" in h)
    final = history[-1].loss if history else None
    kd_loss = None if not plan.token_level else "uld" if plan.alignment == "cross" else config.kd_loss
    return TrainResult(
        output_dir=config.output_dir, mode="kd" if plan.token_level else "sft", kd_loss=kd_loss,
        fell_back=plan.fell_back, steps=trainer.state.global_step, epochs=float(trainer.state.epoch or 0.0),
        train_records=len(data.examples), heldout_records=n_held, teacher_tokens=data.teacher_tokens,
        trained_tokens=trainer.tokens_seen, seconds=round(seconds, 3),
        tokens_per_second=round(trainer.tokens_seen / seconds, 1) if seconds > 0 else 0.0,
        parameters=parameters, final_loss=final, history=history, student=config.student,
        trainable_parameters=trainable, kd_alignment=plan.alignment if plan.token_level else "none",
        aligned_share=round(aligned_share(data.examples), 4) if plan.token_level else None,
        vocab_kept=len(vocab) if vocab is not None else None,
        excluded_mass=None if mass is None else round(mass, 6),
        excluded_mass_after=None if mass_after is None else round(mass_after, 6))
