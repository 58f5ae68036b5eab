"""Countermeasure components: exact at strength zero, the antidistillation penalty against a slow
reference, the watermark still detected under the samplers, output protections, bad input."""

from __future__ import annotations

import copy

import pytest
import torch

from distillscope.countermeasures import (AntidistillationProcessor, LogprobProtection, ProductOfExpertsProcessor,
                                          holdout_direction, protect_logprobs, protect_reasoning, protected_scheme)
from distillscope.errors import ConfigError
from distillscope.teacher import SamplingParams, Teacher
from distillscope.watermark import WatermarkKey, make_scheme

pytestmark = pytest.mark.usefixtures("torch_one_thread")

PROMPTS = ["Tell me about rivers.", "Name three colours.", "Why is the sky blue?"]


@pytest.fixture(scope="module")
def proxy(model_settings):
    from distillscope.teacher import load_model

    return load_model("tiny:7", settings=model_settings, dtype="float32")


def _holdout(loaded) -> list[list[int]]:
    return [loaded.tokenizer.encode(t) for t in ("The river runs to the sea.", "Blue light scatters more.")]


def test_strength_zero_is_plain_sampling_exactly(tiny_loaded, proxy):
    teacher = Teacher(tiny_loaded)
    params = SamplingParams(max_new_tokens=12, temperature=1.0, seed=3)
    plain = [g.token_ids for g in teacher.generate(PROMPTS, params, watermark=False)]
    for proc in (AntidistillationProcessor.from_proxy(proxy, _holdout(proxy), lam=0.0),
                 ProductOfExpertsProcessor.from_proxy(proxy, beta=0.0)):
        got = [g.token_ids for g in teacher.generate(PROMPTS, params, watermark=False, processors=[proc])]
        assert got == plain
    changed = ProductOfExpertsProcessor.from_proxy(proxy, beta=-1.0)
    other = [g.token_ids for g in teacher.generate(PROMPTS, params, watermark=False, processors=[changed])]
    assert other != plain


def test_antidistillation_penalty_matches_the_slow_reference(proxy):
    """The finite difference equals ⟨ĝ, ∇θ log p(x | prefix)⟩ computed token by token with autograd."""
    direction = holdout_direction(proxy.model, _holdout(proxy))
    proc = AntidistillationProcessor(proxy.model, direction, lam=1.0, eps=1e-3, pad_token_id=proxy.pad_token_id)
    prefix = torch.tensor([proxy.tokenizer.encode("Rivers flow")])
    fast = proc.penalty(prefix, proxy.model.config.vocab_size)[0]
    model = copy.deepcopy(proxy.model).float()
    params = list(model.parameters())
    for x in (int(fast.argmax()), int(fast.argmin()), 42, 1000):
        with torch.enable_grad():
            lp = torch.log_softmax(model(input_ids=prefix).logits[0, -1], -1)[x]
            grads = torch.autograd.grad(lp, params, allow_unused=True)
        slow = sum(float((g * d).sum()) for g, d in zip(grads, direction) if g is not None)
        assert float(fast[x]) == pytest.approx(slow, rel=2e-2, abs=1e-4)


def test_the_watermark_is_still_detected_under_the_samplers(tiny_loaded, proxy):
    scheme = make_scheme("kgw", WatermarkKey(bytes(range(32))), gamma=0.25, delta=4.0, context_width=1)
    teacher = Teacher(tiny_loaded, watermark=scheme)
    params = SamplingParams(max_new_tokens=40, temperature=1.0, seed=0)
    detector = scheme.detector(tiny_loaded.tokenizer)
    for proc in (AntidistillationProcessor.from_proxy(proxy, _holdout(proxy), lam=0.5),
                 ProductOfExpertsProcessor.from_proxy(proxy, beta=-0.5)):
        gens = teacher.generate(PROMPTS, params, processors=[proc])
        assert all(detector.detect(list(g.token_ids)).p_value < 1e-4 for g in gens)


def test_logprob_protection():
    chosen, top = [-0.1234567, -2.5], [[(5, -0.1234567), (9, -2.0), (3, -3.0)], [(7, -2.5), (1, -0.5)]]
    same = protect_logprobs(chosen, top, LogprobProtection())
    assert same == (chosen, [list(t) for t in top])
    c, t = protect_logprobs(chosen, top, LogprobProtection(top_k=1, decimals=1))
    assert c == [-0.1, -2.5] and t == [[(5, -0.1)], [(1, -0.5)]]
    noisy = protect_logprobs(chosen, top, LogprobProtection(noise=1.0), seed=1)
    assert noisy != (chosen, top) and all(lp <= 0 for alts in noisy[1] for _, lp in alts)
    assert noisy == protect_logprobs(chosen, top, LogprobProtection(noise=1.0), seed=1)   # seeded per request


def test_reasoning_protection():
    cot = "<think>First add 2 and 2, giving 4.</think> The answer is 4."
    assert protect_reasoning(cot, "answer-only") == "The answer is 4."
    assert protect_reasoning(cot, "summary").startswith("[reasoning withheld]")
    steps = "Step 1: 12 apples.\nStep 2: give away 5.\nFinal answer: 7"
    assert protect_reasoning(steps, "answer-only") == "Final answer: 7"
    plain = "Paris is the capital of France."
    assert protect_reasoning(plain, "answer-only") == plain and protect_reasoning(cot, "off") == cot


def test_stronger_marking_and_bad_input(proxy, tiny_loaded):
    scheme = make_scheme("kgw", WatermarkKey(bytes(range(32))), gamma=0.25, delta=2.0, context_width=1)
    strong = protected_scheme(scheme, delta=4.0)
    assert strong.delta == 4.0 and strong.config()["key_id"] == scheme.config()["key_id"]
    with pytest.raises(ConfigError, match="between"):
        protected_scheme(scheme, delta=1.0)
    with pytest.raises(ConfigError, match="lambda"):
        AntidistillationProcessor.from_proxy(proxy, _holdout(proxy), lam=-1.0)
    with pytest.raises(ConfigError, match="beta"):
        ProductOfExpertsProcessor.from_proxy(proxy, beta=3.0)
    with pytest.raises(ConfigError, match="top_k"):
        LogprobProtection(top_k=0)
    with pytest.raises(ConfigError, match="mode"):
        protect_reasoning("x", "hide")

    class Foreign:
        tokenizer = type("T", (), {"get_vocab": staticmethod(lambda: {"a": 0})})()
    with pytest.raises(ConfigError, match="tokenizer differs"):
        ProductOfExpertsProcessor.from_proxy(Foreign(), beta=-0.5, teacher_tokenizer=tiny_loaded.tokenizer)
