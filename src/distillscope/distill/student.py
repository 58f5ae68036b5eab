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


def build_student(spec: str, tokenizer: Any, *, hidden_size: int = 256, layers: int = 4, heads: int = 4,
                  intermediate_size: int | None = None, max_positions: int = 2048, seed: int = 0) -> Any:
    """The student model: ``"llama"`` (a fresh small Llama with ``tokenizer``'s vocabulary) or an
    HF causal-LM directory (loaded with its weights)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    if spec != "llama":
        if not (Path(spec) / "config.json").is_file():
            raise ModelError(f"student {spec!r} is neither 'llama' nor an HF model directory with config.json",
                             hint="use --student llama (sized by --hidden-size/--layers/--heads) or a model dir")
        try:
            return AutoModelForCausalLM.from_pretrained(spec, dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load the student model from {spec}: {exc}") from exc
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
