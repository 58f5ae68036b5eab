"""Top-k KD losses equal a straightforward reference computation on small tensors."""

from __future__ import annotations

import math

import pytest
import torch

from distillscope.distill.losses import (TAIL_FLOOR, answer_cross_entropy, topk_forward_kl, topk_jsd,
                                         topk_reverse_kl)


def _reference_buckets(logits, ids, lps, temperature):
    """Per position: teacher and student probability lists over top-k + tail, by plain loops."""
    out = []
    for b in range(logits.shape[0]):
        for t in range(logits.shape[1]):
            z = [float(v) / temperature for v in logits[b, t]]
            m = max(z)
            norm = math.log(sum(math.exp(v - m) for v in z)) + m
            q_all = [math.exp(v - norm) for v in z]
            valid = [(int(i), float(lp)) for i, lp in zip(ids[b, t], lps[b, t]) if math.isfinite(float(lp))]
            p = [math.exp(lp) for _, lp in valid]
            p.append(max(1.0 - sum(p), TAIL_FLOOR))
            if temperature != 1.0:
                w = [math.exp(math.log(x) / temperature) for x in p]
                p = [x / sum(w) for x in w]
            top_ids = {i for i, _ in valid}
            q = [q_all[i] for i, _ in valid]
            q.append(sum(v for j, v in enumerate(q_all) if j not in top_ids))
            out.append(((b, t), p, q))
    return out


def _kl(p, q):
    return sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q) if pi > 0)


def _reference(kind, logits, ids, lps, mask, temperature=1.0, beta=0.5):
    values = []
    for (b, t), p, q in _reference_buckets(logits, ids, lps, temperature):
        if not mask[b, t]:
            continue
        if kind == "forward":
            values.append(_kl(p, q))
        elif kind == "reverse":
            values.append(_kl(q, p))
        else:
            mix = [beta * pi + (1 - beta) * qi for pi, qi in zip(p, q)]
            values.append(beta * _kl(p, mix) + (1 - beta) * _kl(q, mix))
    return sum(values) / len(values) * temperature ** 2


@pytest.fixture
def small_case():
    g = torch.Generator().manual_seed(0)
    B, T, V, K = 2, 3, 11, 4
    logits = torch.randn(B, T, V, generator=g) * 2
    teacher = torch.log_softmax(torch.randn(B, T, V, generator=g) * 2, dim=-1)
    lps, ids = teacher.topk(K, dim=-1)
    lps = lps.clone()
    lps[0, 1, 3] = -math.inf                     # a position where the teacher listed only 3 tokens
    mask = torch.tensor([[True, True, False], [True, False, True]])
    return logits, ids, lps, mask


@pytest.mark.parametrize("kind,fn", [("forward", topk_forward_kl), ("reverse", topk_reverse_kl),
                                     ("jsd", topk_jsd)])
@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_losses_match_reference(small_case, kind, fn, temperature):
    logits, ids, lps, mask = small_case
    got = fn(logits, ids, lps, mask, temperature)
    want = _reference(kind, logits, ids, lps, mask, temperature)
    assert got.item() == pytest.approx(want, rel=1e-4, abs=1e-6)


def test_jsd_beta_matches_reference(small_case):
    logits, ids, lps, mask = small_case
    got = topk_jsd(logits, ids, lps, mask, beta=0.2)
    assert got.item() == pytest.approx(_reference("jsd", logits, ids, lps, mask, beta=0.2), rel=1e-4)


def test_zero_when_student_equals_teacher():
    logits = torch.randn(1, 2, 7)
    full = torch.log_softmax(logits, dim=-1)
    lps, ids = full.topk(3, dim=-1)
    mask = torch.ones(1, 2, dtype=torch.bool)
    for fn in (topk_forward_kl, topk_reverse_kl, topk_jsd):
        assert fn(logits, ids, lps, mask).item() == pytest.approx(0.0, abs=1e-5)
    assert topk_forward_kl(logits + torch.randn(1, 2, 7), ids, lps, mask).item() > 1e-4


def test_gradients_finite_with_padding_and_empty_mask(small_case):
    logits, ids, lps, mask = small_case
    logits = logits.clone().requires_grad_(True)
    for fn in (topk_forward_kl, topk_reverse_kl, topk_jsd):
        loss = fn(logits, ids, lps, mask)
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(grad).all()
        assert grad[0, 2].abs().sum() == 0          # unmasked position gets no gradient
    empty = topk_forward_kl(logits, ids, lps, torch.zeros_like(mask))
    assert empty.item() == 0.0


def test_answer_cross_entropy_ignores_masked_labels():
    logits = torch.randn(1, 3, 5)
    labels = torch.tensor([[2, -100, 4]])
    lp = torch.log_softmax(logits, dim=-1)
    want = -(lp[0, 0, 2] + lp[0, 2, 4]) / 2
    assert answer_cross_entropy(logits, labels).item() == pytest.approx(want.item(), rel=1e-5)
