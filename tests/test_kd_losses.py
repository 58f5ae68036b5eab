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


def _knocked_out_tail(logits, ids, valid):
    """The student tail the slow way: logsumexp over the vocabulary with the top-k ids removed."""
    lp = torch.log_softmax(logits.double(), dim=-1)
    knocked = torch.zeros_like(lp, dtype=torch.bool).scatter(-1, torch.where(valid, ids, 0), valid)
    return torch.logsumexp(lp.masked_fill(knocked, -math.inf), dim=-1)


def test_student_tail_equals_knocked_out_logsumexp_even_when_tiny():
    from distillscope.distill.losses import bucket_logprobs

    g = torch.Generator().manual_seed(3)
    V, K = 300, 5
    logits = torch.randn(4, V, generator=g)
    ids = torch.stack([torch.randperm(V, generator=g)[:K] for _ in range(4)])
    logits[1].scatter_(0, ids[1], 30.0)          # top-k holds all but ~1e-11 of the mass
    ids[2, 3] = ids[2, 1]                        # a repeated id leaves the tail once
    lps = torch.full((4, K), -1.0)
    lps[3, 4] = -math.inf                        # padding
    valid = torch.isfinite(lps)
    _, student = bucket_logprobs(logits, ids, lps)
    want = _knocked_out_tail(logits, ids, valid)
    assert torch.isfinite(student).all()
    for row in (0, 2, 3):
        assert student[row, -1].item() == pytest.approx(want[row].item(), rel=1e-5, abs=1e-6)
    # a nearly-empty tail (true mass ~1e-11) is known to float32 rounding only (~1e-7): it stays finite
    # and tiny, far below the teacher's smallest tail (TAIL_FLOOR)
    assert math.exp(student[1, -1].item()) < TAIL_FLOOR / 10


def test_shared_log_probs_give_the_same_losses_and_gradients(small_case):
    from distillscope.distill.losses import student_log_probs

    logits, ids, lps, mask = small_case
    for fn in (topk_forward_kl, topk_reverse_kl, topk_jsd):
        a = logits.clone().requires_grad_(True)
        b = logits.clone().requires_grad_(True)
        plain = fn(a, ids, lps, mask)
        shared = fn(b, ids, lps, mask, student_logprobs=student_log_probs(b))
        assert shared.item() == pytest.approx(plain.item(), rel=1e-6)
        (ga,) = torch.autograd.grad(plain, a)
        (gb,) = torch.autograd.grad(shared, b)
        assert torch.allclose(ga, gb, atol=1e-6)
    labels = torch.tensor([[2, -100, 4], [1, 3, -100]])
    lp = student_log_probs(logits)
    assert answer_cross_entropy(logits, labels, student_logprobs=lp).item() == pytest.approx(
        answer_cross_entropy(logits, labels).item(), rel=1e-6)


def test_all_true_mask_takes_no_copy_and_matches_a_partial_mask():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(3, 2, 9, generator=g)
    lps, ids = torch.log_softmax(torch.randn(3, 2, 9, generator=g), -1).topk(3, dim=-1)
    full = torch.ones(3, 2, dtype=torch.bool)
    want = _reference("forward", logits, ids, lps, full)
    assert topk_forward_kl(logits, ids, lps, full).item() == pytest.approx(want, rel=1e-4)
