"""A loaded causal LM with its tokenizer, plus batched scoring helpers for the audit.

Scoring runs without gradients on right-padded batches, under the model's lock (the same
lock :class:`~distillscope.teacher.Teacher` holds while generating).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Sequence

import numpy as np

from distillscope.errors import InputDataError


@dataclass(frozen=True)
class TokenTopK:
    """Next-token predictions at every position of one sequence.

    ``ids[i]`` / ``logprobs[i]`` (shape ``(k,)``) are the model's k most likely tokens after
    ``token_ids[: i + 1]`` and their log-probabilities (log_softmax at temperature 1).
    """

    token_ids: tuple[int, ...]
    ids: np.ndarray
    logprobs: np.ndarray


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to use. ``fingerprint`` (sha256 of config and weights) is computed on first use."""

    model: Any
    tokenizer: Any
    spec: str
    name: str
    has_chat_template: bool
    device: str
    dtype: str
    source: str = ""
    load_seconds: float = 0.0
    fingerprint_fn: Callable[[], str] = field(default=lambda: "", repr=False, compare=False)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    @cached_property
    def fingerprint(self) -> str:
        return self.fingerprint_fn()

    @property
    def pad_token_id(self) -> int:
        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        return int(pad if pad is not None else 0)

    def encode_text(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        """Token ids of raw text (no chat template)."""
        if not isinstance(text, str) or not text:
            raise InputDataError("cannot encode an empty text", hint="pass non-empty text")
        return list(self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    def _as_ids(self, items: Sequence[str | Sequence[int]], min_len: int = 2) -> list[list[int]]:
        out = []
        for i, item in enumerate(items):
            ids = self.encode_text(item) if isinstance(item, str) else [int(t) for t in item]
            if len(ids) < min_len:
                raise InputDataError(f"item {i} has {len(ids)} token(s); scoring needs at least {min_len}",
                                     hint="pass longer texts or token sequences")
            out.append(ids)
        return out

    def _logits_batches(self, seqs: list[list[int]], batch_size: int):
        """Yield (index, ids, float32 logits[len(ids), vocab]) per sequence, right-padded batches."""
        import torch

        if batch_size < 1:
            raise InputDataError(f"batch_size must be at least 1, got {batch_size}")
        with self.lock, torch.inference_mode():
            for start in range(0, len(seqs), batch_size):
                chunk = seqs[start:start + batch_size]
                width = max(len(s) for s in chunk)
                ids = torch.full((len(chunk), width), self.pad_token_id, dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for row, s in enumerate(chunk):
                    ids[row, :len(s)] = torch.tensor(s)
                    mask[row, :len(s)] = 1
                logits = self.model(input_ids=ids.to(self.model.device),
                                    attention_mask=mask.to(self.model.device)).logits
                for row, s in enumerate(chunk):
                    yield start + row, s, logits[row, :len(s)].float()

    def token_logprobs(self, items: Sequence[str | Sequence[int]], *, batch_size: int = 8) -> list[np.ndarray]:
        """For each text or token sequence ``ids``: ``out[i] = log p(ids[i + 1] | ids[: i + 1])``.

        Texts are tokenized raw (with the tokenizer's special tokens, no chat template).
        Each result has ``len(ids) - 1`` float32 entries.
        """
        import torch

        seqs = self._as_ids(items)
        out: list[np.ndarray] = [np.empty(0, dtype=np.float32)] * len(seqs)
        for index, ids, logits in self._logits_batches(seqs, batch_size):
            logp = torch.log_softmax(logits[:-1], dim=-1)
            target = torch.tensor(ids[1:], device=logp.device).unsqueeze(1)
            out[index] = logp.gather(1, target).squeeze(1).cpu().numpy().astype(np.float32)
        return out

    def next_token_topk(self, items: Sequence[str | Sequence[int]], k: int, *,
                        batch_size: int = 8) -> list[TokenTopK]:
        """The k most likely next tokens (and their logprobs) after every prefix of each sequence."""
        import torch

        if not 1 <= k <= 1000:
            raise InputDataError(f"k must be between 1 and 1000, got {k}")
        seqs = self._as_ids(items, min_len=1)
        out: list[TokenTopK | None] = [None] * len(seqs)
        for index, ids, logits in self._logits_batches(seqs, batch_size):
            top = torch.log_softmax(logits, dim=-1).topk(k, dim=-1)
            out[index] = TokenTopK(tuple(ids), top.indices.cpu().numpy(), top.values.cpu().numpy())
        return out  # type: ignore[return-value]
