"""Teacher.generate(on_token=...): tokens handed over while generating, same answers, cancellation."""

from __future__ import annotations

import pytest

from distillscope.teacher import SamplingParams, Teacher, TokenStep
from distillscope.watermark import WatermarkKey, make_scheme

PROMPTS = ["hi", "Tell me about the sea."]

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.mark.parametrize("scheme", ["kgw", "gumbel"])
@pytest.mark.parametrize("stop", [(), ("e",)])
def test_on_token_sees_every_token_and_changes_nothing(tiny_loaded, scheme, stop):
    teacher = Teacher(tiny_loaded, make_scheme(scheme, WatermarkKey.from_hex("ab" * 32)))
    params = SamplingParams(max_new_tokens=12, temperature=1.0, seed=7, logprobs=2, stop=stop)
    plain = teacher.generate(PROMPTS, params, batch_size=2)
    steps: list[TokenStep] = []
    streamed = teacher.generate(PROMPTS, params, batch_size=2, on_token=steps.append)
    assert streamed == plain  # same seed, same watermarked answers, with or without the hook
    for i, gen in enumerate(plain):
        mine = [s for s in steps if s.index == i]
        assert [s.position for s in mine] == list(range(len(mine)))
        # every kept token was handed over, in order, with its logprobs; a stop string's tokens may follow
        assert [s.token_id for s in mine][:gen.n_tokens] == list(gen.token_ids)
        assert [s.logprob for s in mine][:gen.n_tokens] == list(gen.token_logprobs)
        assert [s.top for s in mine][:gen.n_tokens] == list(gen.top_logprobs)
        assert len(mine) <= gen.n_tokens + (2 if stop else 0)


def test_on_token_arrives_during_generation(tiny_loaded):
    teacher = Teacher(tiny_loaded)
    seen: list[int] = []
    calls = []

    def forward_counter(module, args, kwargs):
        calls.append(len(seen))   # tokens handed over before each forward pass

    handle = tiny_loaded.model.register_forward_pre_hook(forward_counter, with_kwargs=True)
    try:
        teacher.generate(["hi"], SamplingParams(max_new_tokens=6, temperature=0, top_k=0, top_p=1.0),
                         on_token=lambda s: seen.append(s.token_id))
    finally:
        handle.remove()
    assert calls[:3] == [0, 1, 2]  # token t is delivered before the forward pass for token t+1


def test_returning_false_stops_only_that_prompt(tiny_loaded):
    teacher = Teacher(tiny_loaded, make_scheme("kgw", WatermarkKey.from_hex("cd" * 32)))
    params = SamplingParams(max_new_tokens=16, temperature=1.0, seed=3)
    plain = teacher.generate(PROMPTS, params, batch_size=2)
    out = teacher.generate(PROMPTS, params, batch_size=2, on_token=lambda s: not (s.index == 0 and s.position == 2))
    assert out[0].finish_reason == "cancelled" and out[0].token_ids == plain[0].token_ids[:3]
    assert out[0].text == tiny_loaded.tokenizer.decode(list(plain[0].token_ids[:3]), skip_special_tokens=True)
    assert out[1] == plain[1]
