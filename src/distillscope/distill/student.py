"""The student model and the tokenizer check that decides between token- and sequence-level KD.

The default student is a small Llama-architecture model initialised from scratch with the
teacher's tokenizer, sized by ``hidden_size`` / ``layers`` / ``heads``; any HF causal-LM
directory can be used instead. Token-level KD needs the student to share the teacher's
vocabulary: :func:`check_tokenizer` verifies that against the stored records before training.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from distillscope.errors import ModelError
from distillscope.distill.kd_data import TokenMapper, teacher_answer_ids

logger = logging.getLogger(__name__)

DECODE_MATCH_MIN = 0.9
"""Fraction of sampled records whose teacher token ids must decode to their completion text."""

UNMAPPED_TOPK_MAX = 0.05
"""Largest fraction of top-k token strings that may fail to map onto the student's vocabulary."""


@dataclass(frozen=True)
class TokenizerCheck:
    """Whether a student tokenizer can be trained on the teacher's token ids and top-k entries."""

    compatible: bool
    vocab_size: int
    max_teacher_id: int | None         # largest id in token_ids / top_logprob_ids (None: none stored)
    decode_match_rate: float | None    # sampled records whose token_ids decode to the completion
    unmapped_topk_rate: float | None   # top-k token strings the student vocabulary lacks
    reason: str                        # why it is incompatible ("" when compatible)


def load_student_tokenizer(spec: str, *, settings: Any = None) -> Any:
    """A tokenizer from an HF directory, or a teacher spec (``smollm2``, ``tiny`` ...)."""
    if Path(spec).is_dir():
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(spec)
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load a tokenizer from {spec}: {exc}",
                             hint="pass an HF model directory with tokenizer files") from exc
    try:
        from distillscope.teacher import load_tokenizer
    except ImportError as exc:  # pragma: no cover - the teacher package ships with distillscope
        raise ModelError(f"tokenizer spec {spec!r} needs the teacher runtime, which is not installed") from exc
    return load_tokenizer(spec, settings=settings)


def _record_ids(rec: dict[str, Any]) -> list[int]:
    ids = list(rec.get("token_ids") or [])
    for pos in rec.get("top_logprob_ids") or []:
        ids.extend(int(t) for t, _ in pos)
    return ids


def check_tokenizer(tokenizer: Any, records: Sequence[dict[str, Any]], *, sample: int = 64) -> TokenizerCheck:
    """Check a student tokenizer against stored teacher token ids and top-k token strings.

    Compatible means: every stored id is inside the vocabulary, at least ``DECODE_MATCH_MIN`` of
    the sampled records' teacher tokens (``token_ids``, or ``tokens`` strings mapped onto the
    vocabulary) decode back to their completion text, and (for stores with token strings only)
    at most ``UNMAPPED_TOPK_MAX`` of the top-k strings fail to map.
    """
    vocab = len(tokenizer)
    picked = list(records[:sample])
    ids = [i for rec in picked for i in _record_ids(rec)]
    max_id = max(ids) if ids else None
    mapper = TokenMapper(tokenizer)
    answers = [(r, teacher_answer_ids(r, mapper)) for r in picked if r.get("token_ids") or r.get("tokens")]
    rate = None
    if answers:
        hits = sum(ids is not None and _normalise(tokenizer.decode(ids, skip_special_tokens=True))
                   == _normalise(r["completion"]) for r, ids in answers)
        rate = hits / len(answers)
    unmapped = _unmapped_rate(tokenizer, picked)
    reason = ""
    if max_id is not None and max_id >= vocab:
        reason = f"stored teacher token id {max_id} is outside the student vocabulary of {vocab}"
    elif rate is not None and rate < DECODE_MATCH_MIN:
        reason = (f"only {rate:.0%} of the teacher's token_ids decode to their completion text with the "
                  "student tokenizer")
    elif unmapped is not None and unmapped > UNMAPPED_TOPK_MAX:
        reason = f"{unmapped:.0%} of the teacher's top-k tokens are not in the student vocabulary"
    return TokenizerCheck(not reason, vocab, max_id, rate, unmapped, reason)


def _normalise(text: str) -> str:
    return " ".join(text.split())


def _unmapped_rate(tokenizer: Any, records: Sequence[dict[str, Any]]) -> float | None:
    strings = [str(tok) for rec in records if rec.get("top_logprob_ids") is None
               for pos in rec.get("top_logprobs") or [] for tok, _ in pos]
    if not strings:
        return None
    mapper = TokenMapper(tokenizer)
    return sum(mapper.lookup(s) is None for s in strings) / len(strings)


FRESH = "llama"
"""The student spec of a fresh small Llama (sized by hidden_size / layers / heads)."""


def is_fresh(spec: str) -> bool:
    return spec == FRESH


def student_source(spec: str, settings: Any = None) -> Path:
    """The HF directory of a pretrained student spec (a bundled name such as ``gemma3-270m``, a GGUF
    file or an HF directory), converting a bundled GGUF model once into the model cache."""
    from distillscope.teacher.loading import model_directory

    return model_directory(spec, settings)


def pretrained_parameters(directory: Path) -> tuple[int, Any]:
    """(parameter count, config) of the causal LM in ``directory``, counted on the meta device
    (no weights are read)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(str(directory), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the student's config in {directory}: {exc}") from exc
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return count_parameters(model), config


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a training run needs, estimated before any weight is loaded."""

    parameters: int
    trainable: int
    weights: int          # float32 weights
    optimizer: int        # gradients + AdamW moments of the trainable parameters (float32)
    activations: int      # a rough bound for one batch
    available: int

    @property
    def total(self) -> int:
        return self.weights + self.optimizer + self.activations


def available_memory() -> int:
    """Bytes of memory available now (``MemAvailable`` of /proc/meminfo; 16 GiB when unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 16 << 30


def estimate_memory(parameters: int, config: Any, *, trainable: int, batch_size: int, max_length: int,
                    vocab_kept: int | None = None, checkpointing: bool = False,
                    available: int | None = None) -> MemoryEstimate:
    """Float32 weights, gradients and AdamW state of the trainable part, and a rough activation bound
    (per layer ~16 hidden-sized tensors per token, one per layer with gradient checkpointing, plus the
    float32 logits of every position over the kept vocabulary, three times for softmax and gradient)."""
    hidden = int(getattr(config, "hidden_size", 0) or 0)
    layers = int(getattr(config, "num_hidden_layers", 0) or 0)
    vocab = int(vocab_kept or getattr(config, "vocab_size", 0) or 0)
    tokens = batch_size * max_length
    per_layer = 2 if checkpointing else 16
    activations = 4 * tokens * hidden * layers * per_layer + 3 * 4 * tokens * vocab
    return MemoryEstimate(parameters, trainable, 4 * parameters, 12 * trainable, activations,
                          available if available is not None else available_memory())


def truncate_layers(model: Any, keep: int) -> Any:
    """Keep the first ``keep`` decoder layers of a pretrained causal LM (a smaller student that
    starts from pretrained weights); the config, including per-layer lists, is cut to match."""
    decoder = model.get_decoder()
    layers = getattr(decoder, "layers", None)
    if layers is None:
        raise ModelError(f"cannot truncate a {type(model).__name__}: its decoder has no .layers",
                         hint="leave --student-layers unset for this architecture")
    if not 1 <= keep <= len(layers):
        raise ModelError(f"--student-layers {keep} is outside 1..{len(layers)} for this student")
    import torch

    decoder.layers = torch.nn.ModuleList(list(layers)[:keep])
    model.config.num_hidden_layers = keep
    for cfg in (model.config, getattr(model.config, "text_config", None)):
        if cfg is None:
            continue
        cfg.num_hidden_layers = keep
        if isinstance(getattr(cfg, "layer_types", None), list):
            cfg.layer_types = cfg.layer_types[:keep]
    return model


def freeze_below_top(model: Any, top_layers: int) -> int:
    """Freeze everything but the top ``top_layers`` decoder layers and the final norm (embeddings and
    the tied output projection stay frozen). Returns the number of trainable parameters."""
    decoder = model.get_decoder()
    layers = list(getattr(decoder, "layers", []))
    if not 1 <= top_layers <= len(layers):
        raise ModelError(f"--train-top-layers {top_layers} is outside 1..{len(layers)} for this student")
    for p in model.parameters():
        p.requires_grad_(False)
    for module in layers[len(layers) - top_layers:] + [getattr(decoder, "norm", None)]:
        if module is not None:
            for p in module.parameters():
                p.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""Linear layers LoRA adapts by default (attention and MLP of Llama/Gemma/Qwen-style decoders)."""


def add_lora(model: Any, r: int, alpha: float | None = None, dropout: float = 0.0,
             targets: Sequence[str] | None = None) -> Any:
    """Wrap ``model`` with LoRA adapters of rank ``r`` (peft); the base weights are frozen."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:  # pragma: no cover - peft is a dependency
        raise ModelError("LoRA needs the peft package", hint="pip install peft") from exc
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    wanted = [t for t in (targets or LORA_TARGETS) if t in names]
    if not wanted:
        raise ModelError(f"none of the LoRA target modules {list(targets or LORA_TARGETS)} exist in "
                         f"{type(model).__name__}", hint="name its linear layers with --lora-targets")
    config = LoraConfig(r=r, lora_alpha=alpha if alpha is not None else 2 * r, lora_dropout=dropout,
                        target_modules=wanted, bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def trainable_parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_student(spec: str, tokenizer: Any, *, hidden_size: int = 256, layers: int = 4, heads: int = 4,
                  intermediate_size: int | None = None, max_positions: int = 2048, seed: int = 0,
                  settings: Any = None) -> Any:
    """The student model: ``"llama"`` (a fresh small Llama with ``tokenizer``'s vocabulary) or a
    pretrained causal LM (a bundled spec such as ``gemma3-270m``, an HF directory or a GGUF file),
    loaded in float32 with its weights."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if not is_fresh(spec):
        from distillscope.teacher.loading import _from_directory, _tiny_seed

        if _tiny_seed(spec) is not None:      # tiny[:SEED]: a random-init 'pretrained' model (tests, --quick)
            from distillscope.teacher import load_model

            return load_model(spec, settings=settings, dtype="float32").model.train()
        directory = student_source(spec, settings)
        return _from_directory(directory, spec, torch.float32)
    if hidden_size % heads:
        raise ModelError(f"hidden size {hidden_size} is not divisible by {heads} heads",
                         hint="choose --hidden-size as a multiple of --heads")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=heads,
                      intermediate_size=intermediate_size or 2 * hidden_size,
                      max_position_embeddings=max_positions, tie_word_embeddings=True,
                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                      pad_token_id=pad)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    logger.info("built a fresh Llama student: %.1fM parameters", count_parameters(model) / 1e6)
    return model


def count_parameters(model: Any) -> int:
    """Number of distinct parameters (tied embeddings counted once)."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total
