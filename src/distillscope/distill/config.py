"""``DistillConfig``: every choice of a distillation run, as a ``transformers.TrainingArguments``.

Like TRL's configs, the distillation fields extend the HF trainer arguments instead of re-declaring
them, so the config goes to :class:`~distillscope.distill.training.DistillTrainer` as it is and
round-trips through ``to_dict`` / ``from_dict`` and the ``distill_config.json`` saved with every
student and checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from transformers import TrainingArguments

from distillscope import __version__
from distillscope.distill.kd_data import PROMPT_FORMATS
from distillscope.distill.losses import KD_LOSSES
from distillscope.distill.student import FRESH, is_fresh
from distillscope.errors import ConfigError

CONFIG_FILE = "distill_config.json"


def _cpu_has_fast_bf16() -> bool:
    """The CPU has bfloat16 matrix instructions (AVX512-BF16 or AMX), where bf16 autocast pays."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def checkpointing_field(on: bool) -> dict[str, bool]:
    """``{"activation_checkpointing": on}``, or the older ``gradient_checkpointing`` name on a
    transformers release that predates the rename."""
    names = {f.name for f in fields(TrainingArguments)}
    return {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": on}


@dataclass
class DistillConfig(TrainingArguments):
    """Every choice of a distillation run: ``transformers.TrainingArguments`` (optimiser, schedule,
    batch size, checkpoints, precision, ``gradient_checkpointing`` ... under their HF names) plus the
    distillation fields below. Like TRL's configs it *is* a ``TrainingArguments``, so it goes to the
    ``Trainer`` as it is and round-trips through ``to_dict``/``from_dict`` and ``distill_config.json``.

    Changed HF defaults: ``learning_rate`` None (resolved: 5e-4 for a fresh student, 2e-4 with LoRA,
    5e-5 for full fine-tuning of a pretrained one), ``lr_scheduler_type`` cosine, ``warmup_steps``
    0.05 (a float below 1 is a share of the steps in transformers 5), ``seed`` 0, ``logging_steps``
    10, ``save_steps`` 200, ``save_total_limit`` 2, ``bf16`` None (resolved: on with a CUDA GPU that
    supports it, or for a pretrained student on a CPU with AVX512-BF16/AMX), ``use_cpu`` when no GPU,
    ``report_to`` none.

    Data
        store (str): harvest store directory (``manifest.json`` + ``records.jsonl``). Required.
        heldout_fraction (float, 0.1): share of records (by a hash of their id) kept out for ``evaluate``.
        max_records (int | None): train on at most this many records (store order); None = all.
        max_length (int, 512): longest training sequence (prompt + answer) in tokens.
        prompt_format (str, "auto"): ``auto`` (the student's chat template, else the plain
            ``User:``/``Assistant:`` format), ``chat`` (require a chat template) or ``plain``.
    Objective
        mode (str, "kd"): ``sft`` (cross-entropy on the teacher's answer tokens) or ``kd`` (plus a KD
            loss on the stored top-k log-probabilities: token-level when the student shares the
            teacher's tokenizer, else cross-tokenizer ULD on character-offset aligned positions).
        kd_loss (str, "forward"): token-level KD loss, ``forward``/``reverse`` KL or ``jsd``.
        ce_weight / kd_weight (float | None): default 1.0 / 0.0 (sft), 0.5 / 0.5 (kd).
        temperature (float, 1.0); jsd_beta (float, 0.5).
        teacher_tokenizer (str | None): the teacher's tokenizer (spec or dir) for cross-tokenizer KD;
            default the store manifest's ``tokenizer_hint`` or ``model``.
        fallback_to_sft (bool, False): when cross-tokenizer KD is impossible (no teacher tokenizer),
            train SFT with a warning instead of failing.
    Student
        student (str, "llama"): ``llama`` (fresh small Llama, sized below), a bundled spec
            (``gemma3-270m``, ``smollm2``), an HF model directory or a GGUF file.
        tokenizer (str | None): default the student's own, else (fresh) ``smollm2``.
        hidden_size (256), layers (4), heads (4), intermediate_size (None = 2 * hidden): fresh student.
        student_layers (int | None): keep only the first N decoder layers of a pretrained student.
        lora_r (int, 0): LoRA rank (0 = off); lora_alpha (None = 2r), lora_dropout (0.0),
            lora_targets (None = attention and MLP projections). The adapters are merged on save.
        train_top_layers (int | None): train only the top N decoder layers (and the final norm).
        restrict_vocab (bool, False): softmax over the tokens of the training data only (see docs).
        max_memory_gb (float | None): memory the run may use (default: available now); a student
            estimated to need more is refused before loading.
        max_seconds (float | None): stop (and save) after this much training time.
        resume (bool | str, False): resume from the latest checkpoint in ``output_dir`` or the given one.
    """

    store: str | None = None
    heldout_fraction: float = 0.1
    max_records: int | None = None
    max_length: int = 512
    prompt_format: str = "auto"
    mode: str = "kd"
    kd_loss: str = "forward"
    ce_weight: float | None = None
    kd_weight: float | None = None
    temperature: float = 1.0
    jsd_beta: float = 0.5
    teacher_tokenizer: str | None = None
    fallback_to_sft: bool = False
    student: str = FRESH
    tokenizer: str | None = None
    hidden_size: int = 256
    layers: int = 4
    heads: int = 4
    intermediate_size: int | None = None
    student_layers: int | None = None
    lora_r: int = 0
    lora_alpha: float | None = None
    lora_dropout: float = 0.0
    lora_targets: list[str] | None = None
    train_top_layers: int | None = None
    restrict_vocab: bool = False
    max_memory_gb: float | None = None
    max_seconds: float | None = None
    resume: bool | str = False
    # HF fields whose defaults differ here
    learning_rate: float | None = None
    lr_scheduler_type: Any = "cosine"
    warmup_steps: float = 0.05
    seed: int = 0
    logging_steps: float = 10
    save_steps: float = 200
    save_total_limit: int | None = 2
    bf16: bool | None = None
    report_to: Any = "none"
    disable_tqdm: bool | None = True
    remove_unused_columns: bool = False

    def __post_init__(self) -> None:
        if self.store is None or self.output_dir is None:
            raise ConfigError("DistillConfig needs a store and an output_dir",
                              hint="DistillConfig(store='runs/harvest', output_dir='runs/student', ...)")
        self.store, self.output_dir = str(self.store), str(self.output_dir)
        if self.mode not in ("sft", "kd"):
            raise ConfigError(f"mode {self.mode!r} is not one of sft, kd")
        if self.kd_loss not in KD_LOSSES:
            raise ConfigError(f"kd_loss {self.kd_loss!r} is not one of {', '.join(KD_LOSSES)}")
        if self.prompt_format not in PROMPT_FORMATS:
            raise ConfigError(f"prompt_format {self.prompt_format!r} is not one of {', '.join(PROMPT_FORMATS)}")
        if self.ce_weight is None:
            self.ce_weight = 1.0 if self.mode == "sft" else 0.5
        if self.kd_weight is None:
            self.kd_weight = 0.0 if self.mode == "sft" else 0.5
        if self.tokenizer is None:
            self.tokenizer = self.student if not is_fresh(self.student) else "smollm2"
        if self.intermediate_size is None:
            self.intermediate_size = 2 * self.hidden_size
        if self.learning_rate is None:
            self.learning_rate = 5e-4 if is_fresh(self.student) else 2e-4 if self.lora_r else 5e-5
        if self.bf16 is None:
            self.bf16 = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported()) or (
                not torch.cuda.is_available() and not is_fresh(self.student) and _cpu_has_fast_bf16())
        if not torch.cuda.is_available():
            self.use_cpu = True
        if self.data_seed is None:
            self.data_seed = self.seed
        if is_fresh(self.student) and (self.lora_r or self.train_top_layers or self.student_layers):
            raise ConfigError("--lora-r, --train-top-layers and --student-layers apply to a pretrained student",
                              hint="pass --student gemma3-270m (or another model) or drop those options")
        if self.lora_r and self.train_top_layers:
            raise ConfigError("choose LoRA (--lora-r) or partial freezing (--train-top-layers), not both")
        self._check_ranges()
        super().__post_init__()

    def _check_ranges(self) -> None:
        checks = [("ce_weight", self.ce_weight >= 0), ("kd_weight", self.kd_weight >= 0),
                  ("temperature", self.temperature > 0), ("jsd_beta", 0 < self.jsd_beta < 1),
                  ("heldout_fraction", 0 <= self.heldout_fraction < 1), ("max_length", self.max_length >= 8),
                  ("per_device_train_batch_size", self.per_device_train_batch_size >= 1),
                  ("gradient_accumulation_steps", self.gradient_accumulation_steps >= 1),
                  ("learning_rate", self.learning_rate > 0), ("num_train_epochs", self.num_train_epochs > 0),
                  ("save_steps", self.save_steps > 0), ("logging_steps", self.logging_steps > 0),
                  ("lora_r", self.lora_r >= 0), ("warmup_steps", self.warmup_steps >= 0)]
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

    @property
    def uses_pretrained(self) -> bool:
        return not is_fresh(self.student)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DistillConfig":
        """The config of a ``to_dict()`` / ``distill_config.json`` (extra keys such as ``token_level``
        and ``distillscope_version``, and the masked ``*_token`` values, are ignored)."""
        known = {f.name for f in fields(cls) if f.init}
        data = {k: v for k, v in data.items() if k in known
                and not (k.endswith("_token") and v == f"<{k.upper()}>")}
        return cls(**data)

    def save(self, directory: str | Path, **extra: Any) -> None:
        """Write the resolved config (plus version and ``extra``) as ``distill_config.json``."""
        path = Path(directory) / CONFIG_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**self.to_dict(), **extra, "distillscope_version": __version__}, indent=2,
                                   default=str))

    @classmethod
    def load(cls, directory: str | Path) -> "DistillConfig":
        path = Path(directory) / CONFIG_FILE
        if not path.is_file():
            raise ConfigError(f"{directory} holds no {CONFIG_FILE}", hint="point at a `distillscope train` output")
        return cls.from_dict(json.loads(path.read_text()))
