"""Knowledge-distillation losses against a teacher's stored top-k log-probabilities.

An API teacher returns, for each generated token, only its ``k`` most likely tokens and their
log-probabilities. These functions compare the student with that partial distribution over
``k + 1`` *buckets*: the ``k`` listed tokens plus one *tail* bucket holding the rest of the
probability mass,

* teacher tail: ``p_tail = 1 - sum(exp(topk_logprobs))`` (floored at ``TAIL_FLOOR``),
* student tail: ``log q_tail = log(1 - sum of the student's probabilities of the top-k tokens)``,
  i.e. the student's mass on every token that is *not* in the teacher's top-k.

So both sides are proper distributions over the same buckets and the KL is exact for them.

Conventions shared by every function here:

* ``student_logits``: ``[..., V]`` raw logits at the positions being scored;
* ``topk_ids``: ``[..., K]`` long, teacher token ids; ``topk_logprobs``: ``[..., K]`` float,
  teacher log-probabilities (temperature 1). Entries with ``-inf`` log-probability are
  padding (a position where the teacher listed fewer than ``K`` tokens) and are ignored;
* ``mask``: ``[...]`` bool, the positions to score (answer tokens that have top-k data);
* the result is the mean over the masked positions (a 0-d tensor; 0 when nothing is masked).

``temperature`` softens both sides: the student's logits are divided by it before the
softmax, the teacher's ``k + 1`` buckets are tempered as buckets (``log p / T``, renormalised),
an approximation forced by the missing tail, and the loss is multiplied by ``T**2`` so its
gradient scale does not change with ``T`` (Hinton et al., 2015).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

TAIL_FLOOR = 1e-6
"""Smallest teacher tail mass: keeps ``log p_tail`` finite when the top-k sums to ~1."""

PAD_LOGPROB = -1e4
"""Log-probability given to padded buckets: ``exp`` is exactly 0 and gradients stay finite."""

STUDENT_TAIL_FLOOR = 1e-12
"""Smallest student tail mass (float64 rounding can push the top-k sum to 1)."""


def student_log_probs(student_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``log_softmax(logits / T)`` in float32: the student's side of every loss here. At ``T = 1`` the
    trainer computes it once and hands it to both the cross-entropy and the KD loss."""
    z = student_logits.float()
    return torch.log_softmax(z / temperature if temperature != 1.0 else z, dim=-1)


def bucket_logprobs(student_logits: torch.Tensor, topk_ids: torch.Tensor, topk_logprobs: torch.Tensor,
                    temperature: float = 1.0, *,
                    student_logprobs: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher and student log-probabilities over the ``K + 1`` buckets (top-k, then tail).

    Returns ``(teacher, student)``, each ``[..., K + 1]``; padded top-k entries are
    ``PAD_LOGPROB`` on both sides so they carry no mass. ``student_logprobs`` (optional) is
    ``student_log_probs(student_logits, temperature)`` when the caller already has it.

    The student's tail is ``log(1 - sum of its top-k probabilities)``, summed in float64: the same
    quantity as a logsumexp over the knocked-out vocabulary (``log_softmax`` is normalised), with
    the same gradient, but without three more passes over a ``[..., V]`` tensor, which were a
    fifth of a small student's training step. It is exact up to the float32 rounding of the
    log-softmax (about 1e-7 of absolute mass), far below the teacher's ``TAIL_FLOOR``, so only a
    tail the student already makes negligible is blurred. Duplicate ids in a top-k list count once.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    valid = torch.isfinite(topk_logprobs)
    t_lp = torch.where(valid, topk_logprobs.float(), torch.full_like(topk_logprobs, PAD_LOGPROB, dtype=torch.float))
    top_mass = t_lp.exp().sum(-1)
    t_tail = torch.log(torch.clamp(1.0 - top_mass, min=TAIL_FLOOR))
    teacher = torch.cat([t_lp, t_tail.unsqueeze(-1)], dim=-1)
    if temperature != 1.0:
        teacher = torch.log_softmax(teacher / temperature, dim=-1)

    s_lp = student_logprobs if student_logprobs is not None else student_log_probs(student_logits, temperature)
    ids = torch.where(valid, topk_ids, torch.zeros_like(topk_ids))
    # A repeated id is a bucket of its own on both sides (as before) but its mass leaves the tail once.
    first = valid & _first_occurrence(ids)
    s_top = s_lp.gather(-1, ids)
    s_top = torch.where(valid, s_top, torch.full_like(s_top, PAD_LOGPROB))
    s_mass = torch.where(first, s_top, torch.full_like(s_top, PAD_LOGPROB)).double().exp().sum(-1)
    s_tail = torch.log1p(-torch.clamp(s_mass, max=1.0 - STUDENT_TAIL_FLOOR)).float()
    student = torch.cat([s_top, s_tail.unsqueeze(-1)], dim=-1)
    return teacher, student


def _first_occurrence(ids: torch.Tensor) -> torch.Tensor:
    """``[..., K]`` bool: the entry is the first of its value in its top-k list."""
    same = ids.unsqueeze(-1) == ids.unsqueeze(-2)                       # [..., K, K]
    earlier = torch.ones(ids.shape[-1], ids.shape[-1], dtype=torch.bool, device=ids.device).tril(-1)
    return ~(same & earlier).any(-1)


def _kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """``sum p (log p - log q)`` over the last axis; buckets with ``p = 0`` contribute 0."""
    p = log_p.exp()
    diff = torch.where(p > 0, log_p - log_q, torch.zeros_like(log_p))
    return (p * diff).sum(-1)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor, temperature: float) -> torch.Tensor:
    mask = mask.bool()
    n = mask.sum()
    if n == 0:
        return values.sum() * 0.0
    return values[mask].sum() / n * (temperature ** 2)


def _select(mask: torch.Tensor, *tensors: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
    """Keep only the masked positions (saves the full-vocabulary work on padding); no copy when
    every position is masked in. ``None`` entries stay ``None``."""
    m = mask.bool()
    if m.all():
        return tuple(t.reshape(-1, *t.shape[m.dim():]) if t is not None else None for t in tensors)
    return tuple(t[m] if t is not None else None for t in tensors)


def topk_forward_kl(student_logits: torch.Tensor, topk_ids: torch.Tensor, topk_logprobs: torch.Tensor,
                    mask: torch.Tensor, temperature: float = 1.0, *,
                    student_logprobs: torch.Tensor | None = None) -> torch.Tensor:
    """Forward KL ``KL(teacher || student)`` over top-k + tail buckets (mass-covering)."""
    logits, ids, lps, s_lp = _select(mask, student_logits, topk_ids, topk_logprobs, student_logprobs)
    teacher, student = bucket_logprobs(logits, ids, lps, temperature, student_logprobs=s_lp)
    return _masked_mean(_kl(teacher, student), torch.ones(teacher.shape[:-1], dtype=torch.bool), temperature)


def topk_reverse_kl(student_logits: torch.Tensor, topk_ids: torch.Tensor, topk_logprobs: torch.Tensor,
                    mask: torch.Tensor, temperature: float = 1.0, *,
                    student_logprobs: torch.Tensor | None = None) -> torch.Tensor:
    """Reverse KL ``KL(student || teacher)`` over top-k + tail buckets (mode-seeking)."""
    logits, ids, lps, s_lp = _select(mask, student_logits, topk_ids, topk_logprobs, student_logprobs)
    teacher, student = bucket_logprobs(logits, ids, lps, temperature, student_logprobs=s_lp)
    return _masked_mean(_kl(student, teacher), torch.ones(teacher.shape[:-1], dtype=torch.bool), temperature)


def topk_jsd(student_logits: torch.Tensor, topk_ids: torch.Tensor, topk_logprobs: torch.Tensor,
             mask: torch.Tensor, temperature: float = 1.0, beta: float = 0.5, *,
             student_logprobs: torch.Tensor | None = None) -> torch.Tensor:
    """Generalised Jensen-Shannon divergence over top-k + tail buckets.

    ``JSD_beta = beta * KL(p || m) + (1 - beta) * KL(q || m)`` with ``m = beta p + (1 - beta) q``
    (``p`` teacher, ``q`` student), the form used by GKD (Agarwal et al., 2024).
    """
    if not 0.0 < beta < 1.0:
        raise ValueError(f"beta must be in (0, 1), got {beta}")
    logits, ids, lps, s_lp = _select(mask, student_logits, topk_ids, topk_logprobs, student_logprobs)
    teacher, student = bucket_logprobs(logits, ids, lps, temperature, student_logprobs=s_lp)
    log_m = torch.logsumexp(torch.stack([teacher + math.log(beta), student + math.log(1 - beta)]), dim=0)
    values = beta * _kl(teacher, log_m) + (1 - beta) * _kl(student, log_m)
    return _masked_mean(values, torch.ones(teacher.shape[:-1], dtype=torch.bool), temperature)


KD_LOSSES = {"forward": topk_forward_kl, "reverse": topk_reverse_kl, "jsd": topk_jsd}
"""The KD losses by their ``DistillConfig.kd_loss`` name."""


def answer_cross_entropy(student_logits: torch.Tensor, labels: torch.Tensor, *,
                         student_logprobs: torch.Tensor | None = None) -> torch.Tensor:
    """Mean next-token cross-entropy over positions whose label is not ``-100`` (already aligned);
    ``student_logprobs`` (``student_log_probs(student_logits)``) saves a second log-softmax."""
    if (labels != -100).sum() == 0:
        return student_logits.sum() * 0.0
    if student_logprobs is not None:
        return F.nll_loss(student_logprobs.reshape(-1, student_logprobs.shape[-1]), labels.reshape(-1),
                          ignore_index=-100)
    return F.cross_entropy(student_logits.reshape(-1, student_logits.shape[-1]).float(), labels.reshape(-1),
                           ignore_index=-100)


def topk_uld(student_logits: torch.Tensor, topk_logprobs: torch.Tensor, mask: torch.Tensor,
             temperature: float = 1.0, *, student_logprobs: torch.Tensor | None = None) -> torch.Tensor:
    """Universal Logit Distillation (Boizard et al., 2024) against a teacher's top-k: the L1 distance
    between the *sorted* probabilities of teacher and student, for a student with another tokenizer.

    ULD compares the two distributions rank by rank, so it needs no shared vocabulary: the teacher's
    ``K`` listed probabilities, sorted in decreasing order, against the student's ``K`` largest, plus
    one tail bucket each (``1 - sum``), i.e. ``sum_r |p_(r) - q_(r)| + |p_tail - q_tail|``, averaged
    over the masked positions. ``topk_logprobs``: ``[..., K]`` teacher log-probabilities in any order,
    ``-inf`` for padding (a padded rank has probability 0). The positions are aligned beforehand by
    character offsets (:func:`distillscope.distill.kd_data.build_cross_examples`). With ``T != 1`` the
    student's logits are divided by ``T`` and the teacher's ``K + 1`` buckets tempered as buckets; the
    loss is scaled by ``T**2`` like the other losses here. ``student_logits`` may be ``None`` when
    ``student_logprobs`` is given.
    """
    m = mask.bool()
    lps = topk_logprobs[m]
    s_lp = student_logprobs[m] if student_logprobs is not None else \
        student_log_probs(student_logits[m], temperature)
    if lps.shape[0] == 0:
        return s_lp.sum() * 0.0
    k = lps.shape[-1]
    valid = torch.isfinite(lps)
    t_lp = torch.where(valid, lps.float(), torch.full_like(lps, PAD_LOGPROB, dtype=torch.float))
    t_tail = torch.log(torch.clamp(1.0 - t_lp.exp().sum(-1), min=TAIL_FLOOR))
    teacher = torch.cat([t_lp, t_tail.unsqueeze(-1)], dim=-1)
    if temperature != 1.0:
        teacher = torch.log_softmax(teacher / temperature, dim=-1)
    t_top = teacher[..., :k].exp().sort(dim=-1, descending=True).values
    t_rest = teacher[..., k].exp()
    s_top = s_lp.topk(min(k, s_lp.shape[-1]), dim=-1).values.exp()
    if s_top.shape[-1] < k:
        s_top = torch.cat([s_top, s_top.new_zeros(*s_top.shape[:-1], k - s_top.shape[-1])], dim=-1)
    s_rest = torch.clamp(1.0 - s_top.double().sum(-1), min=0.0).float()
    values = (t_top - s_top).abs().sum(-1) + (t_rest - s_rest).abs()
    return values.mean() * (temperature ** 2)
