"""Samplers that make a protected account's answers teach a student less.

Both are ``transformers`` logits processors over the teacher's raw scores, placed before the
watermark (``Teacher.generate(..., processors=[...])``), so the watermark still marks what they
produce. Both need a *proxy student* that shares the teacher's tokenizer (a small model of the kind
a distiller would train).

* :class:`AntidistillationProcessor` (Savani et al., NeurIPS 2025). Training a student on token x
  moves its parameters along ∇θ log p(x); the student's loss on held-out teacher text then changes by
  about η ⟨∇θ L, ∇θ log p(x)⟩. The sampler adds ``λ · ⟨ĝ, ∇θ log p_proxy(x | prefix)⟩`` to the score of
  every token x (ĝ: the unit gradient of the proxy's held-out loss), favouring tokens that would
  *raise* a student's loss. The inner product for the whole vocabulary costs two forward passes of
  the proxy per step, by a central finite difference:
  ``(log p_{θ+εĝ}(x) − log p_{θ−εĝ}(x)) / 2ε``. λ = 0 is plain sampling, exactly.
* :class:`ProductOfExpertsProcessor` (after the Distillation Game, Allouah et al. 2026): samples
  from ``p_teacher · p_proxy^β`` (forward passes only). β < 0 moves away from what a student already
  predicts; β = 0 is plain sampling, exactly.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Sequence

import torch
from transformers import LogitsProcessor

from distillscope.errors import ConfigError


def _mask_and_positions(input_ids: torch.Tensor, pad_token_id: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention mask and positions of a left-padded batch (what ``generate`` feeds the teacher)."""
    if pad_token_id is None:
        mask = torch.ones_like(input_ids)
    else:
        mask = ((input_ids != pad_token_id).long().cumsum(-1) > 0).long()
    return mask, (mask.cumsum(-1) - 1).clamp(min=0)


def _next_logprobs(model: Any, input_ids: torch.Tensor, pad_token_id: int | None, vocab: int) -> torch.Tensor:
    mask, positions = _mask_and_positions(input_ids, pad_token_id)
    logits = model(input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device),
                   position_ids=positions.to(model.device)).logits[:, -1].float()
    lp = torch.log_softmax(logits, dim=-1)
    if lp.shape[-1] < vocab:     # the teacher's output layer may be padded past the tokenizer
        lp = torch.cat([lp, torch.full((lp.shape[0], vocab - lp.shape[-1]), 0.0, device=lp.device)], dim=-1)
    return lp[:, :vocab]


def _check_proxy(proxy: Any, teacher_tokenizer: Any | None) -> None:
    tok = getattr(proxy, "tokenizer", None)
    if teacher_tokenizer is not None and tok is not None and tok.get_vocab() != teacher_tokenizer.get_vocab():
        raise ConfigError("the proxy student's tokenizer differs from the teacher's",
                          hint="countermeasure samplers need a proxy that shares the teacher's token ids")


def holdout_direction(proxy_model: Any, holdout: Sequence[Sequence[int]], *, max_length: int = 256) -> list[torch.Tensor]:
    """ĝ: the unit gradient (over all parameters) of the proxy's mean next-token loss on ``holdout``."""
    seqs = [list(s)[:max_length] for s in holdout if len(s) >= 2]
    if not seqs:
        raise ConfigError("antidistillation needs held-out teacher text of at least 2 tokens",
                          hint="pass a few teacher answers as token ids")
    params = [p for p in proxy_model.parameters()]
    grads = [torch.zeros_like(p, dtype=torch.float32) for p in params]
    proxy_model.zero_grad(set_to_none=True)
    with torch.enable_grad():
        for s in seqs:
            ids = torch.tensor([s], device=proxy_model.device)
            loss = proxy_model(input_ids=ids, labels=ids).loss / len(seqs)
            for g, d in zip(grads, torch.autograd.grad(loss, params, allow_unused=True)):
                if d is not None:
                    g += d.float()
    norm = math.sqrt(sum(float((g * g).sum()) for g in grads))
    if norm == 0.0:
        raise ConfigError("the proxy's held-out loss has no gradient", hint="use a trainable proxy model")
    return [g / norm for g in grads]


class AntidistillationProcessor(LogitsProcessor):
    """Adds ``lam · ⟨ĝ, ∇θ log p_proxy(x | prefix)⟩`` to every token's score (module docstring)."""

    def __init__(self, proxy_model: Any, direction: Sequence[torch.Tensor], *, lam: float, eps: float = 1e-3,
                 pad_token_id: int | None = None) -> None:
        if not math.isfinite(lam) or lam < 0:
            raise ConfigError(f"antidistillation: lambda must be a finite number >= 0, got {lam!r}",
                              hint="0 is plain sampling; try 0.1 to 1")
        if not 0 < eps < 1:
            raise ConfigError(f"antidistillation: eps must be in (0, 1), got {eps!r}")
        self.lam, self.eps, self.pad_token_id = float(lam), float(eps), pad_token_id
        self.plus, self.minus = None, None
        if self.lam > 0:
            self.plus, self.minus = copy.deepcopy(proxy_model).eval(), copy.deepcopy(proxy_model).eval()
            with torch.no_grad():
                for pp, pm, d in zip(self.plus.parameters(), self.minus.parameters(), direction):
                    pp.add_(d.to(pp.dtype), alpha=self.eps)
                    pm.add_(d.to(pm.dtype), alpha=-self.eps)

    @classmethod
    def from_proxy(cls, proxy: Any, holdout: Sequence[Sequence[int]], *, lam: float, eps: float = 1e-3,
                   teacher_tokenizer: Any | None = None) -> "AntidistillationProcessor":
        """From a teacher-runtime ``LoadedModel`` proxy and held-out teacher answers (token ids)."""
        _check_proxy(proxy, teacher_tokenizer)
        direction = holdout_direction(proxy.model, holdout) if lam > 0 else []
        return cls(proxy.model, direction, lam=lam, eps=eps, pad_token_id=proxy.pad_token_id)

    def penalty(self, input_ids: torch.Tensor, vocab: int) -> torch.Tensor:
        """⟨ĝ, ∇θ log p(x | prefix)⟩ for every x, by the central finite difference."""
        with torch.inference_mode():
            plus = _next_logprobs(self.plus, input_ids, self.pad_token_id, vocab)
            minus = _next_logprobs(self.minus, input_ids, self.pad_token_id, vocab)
        return (plus - minus) / (2 * self.eps)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.lam == 0:
            return scores
        return scores + self.lam * self.penalty(input_ids, scores.shape[-1]).to(scores.dtype)


class ProductOfExpertsProcessor(LogitsProcessor):
    """Samples from ``p_teacher · p_proxy^beta``: adds ``beta · log p_proxy(x | prefix)`` to the scores."""

    def __init__(self, proxy_model: Any, *, beta: float, pad_token_id: int | None = None) -> None:
        if not math.isfinite(beta) or not -4.0 <= beta <= 1.0:
            raise ConfigError(f"product of experts: beta must be in [-4, 1], got {beta!r}",
                              hint="negative values sample away from the proxy student; 0 is plain sampling")
        self.model, self.beta, self.pad_token_id = proxy_model, float(beta), pad_token_id

    @classmethod
    def from_proxy(cls, proxy: Any, *, beta: float, teacher_tokenizer: Any | None = None) -> "ProductOfExpertsProcessor":
        _check_proxy(proxy, teacher_tokenizer)
        return cls(proxy.model, beta=beta, pad_token_id=proxy.pad_token_id)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.beta == 0:
            return scores
        with torch.inference_mode():
            lp = _next_logprobs(self.model, input_ids, self.pad_token_id, scores.shape[-1])
        return scores + self.beta * lp.to(scores.dtype)
