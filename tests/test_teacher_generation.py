"""Teacher.generate: seeds, greedy batching, stop strings, logprobs, watermark hook, threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from transformers import LogitsProcessor

from distillscope.errors import ConfigError, InputDataError
from distillscope.teacher import Generation, SamplingParams, Teacher

PROMPTS = ["What is two plus two?", "Name a colour.", "Write a long story about a dragon who learns to fly."]

pytestmark = pytest.mark.usefixtures("torch_one_thread")


class GreenBoost(LogitsProcessor):
    """A stand-in watermark: adds ``delta`` to every token id divisible by 4."""

    def __init__(self, delta: float) -> None:
        self.delta = delta

    def __call__(self, input_ids, scores):
        scores = scores.clone()
        scores[:, ::4] += self.delta
        return scores


class FakeScheme:
    def __init__(self, delta: float = 8.0) -> None:
        self.delta, self.calls = delta, []

    def processor(self, **sampling):
        self.calls.append(sampling)
        return GreenBoost(self.delta)

    def config(self):
        return {"scheme": "fake", "key_id": "fake-key-id"}


def test_same_seed_same_output_and_other_seed_differs(tiny_loaded):
    teacher = Teacher(tiny_loaded)
    a = teacher.generate(PROMPTS, SamplingParams(max_new_tokens=12, seed=7), batch_size=2)
    b = teacher.generate(PROMPTS, SamplingParams(max_new_tokens=12, seed=7), batch_size=2)
    c = teacher.generate(PROMPTS, SamplingParams(max_new_tokens=12, seed=8), batch_size=2)
    assert a == b
    assert [g.token_ids for g in a] != [g.token_ids for g in c]
    assert all(isinstance(g, Generation) and g.finish_reason in ("stop", "length") for g in a)


def test_seeded_generation_leaves_the_global_rng_alone(tiny_loaded):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    Teacher(tiny_loaded).generate(PROMPTS[:1], SamplingParams(max_new_tokens=4, seed=1))
    assert torch.equal(torch.rand(3), expected)


def test_greedy_batched_left_padding_equals_one_by_one(tiny_loaded):
    teacher = Teacher(tiny_loaded)
    params = SamplingParams(max_new_tokens=10, temperature=0)
    batched = teacher.generate(PROMPTS, params, batch_size=3)
    single = [teacher.generate([p], params)[0] for p in PROMPTS]
    assert [g.token_ids for g in batched] == [g.token_ids for g in single]
    assert [g.prompt_ids for g in batched] == [tuple(teacher.encode_prompt(p)) for p in PROMPTS]


def test_results_keep_the_callers_order(tiny_loaded):
    teacher = Teacher(tiny_loaded)
    params = SamplingParams(max_new_tokens=3, temperature=0)
    out = teacher.generate(PROMPTS[::-1], params, batch_size=1)
    assert [g.prompt_ids for g in out] == [tuple(teacher.encode_prompt(p)) for p in PROMPTS[::-1]]


def test_length_finish_and_token_count(tiny_loaded):
    (gen,) = Teacher(tiny_loaded).generate(PROMPTS[:1], SamplingParams(max_new_tokens=9, seed=1))
    assert gen.finish_reason == "length" and gen.n_tokens == 9
    assert gen.text == tiny_loaded.tokenizer.decode(list(gen.token_ids), skip_special_tokens=True)


def test_stop_string_truncates_text_and_tokens(tiny_loaded):
    teacher = Teacher(tiny_loaded)
    params = SamplingParams(max_new_tokens=24, seed=3)
    (full,) = teacher.generate(PROMPTS[:1], params)
    stop = full.text[len(full.text) // 2:len(full.text) // 2 + 3]
    assert stop.strip(), "pick a visible stop string"
    (cut,) = teacher.generate(PROMPTS[:1], SamplingParams(max_new_tokens=24, seed=3, stop=(stop,)))
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[:full.text.find(stop)] and stop not in cut.text
    assert cut.token_ids == full.token_ids[:len(cut.token_ids)] and len(cut.token_ids) < len(full.token_ids)
    assert len(tiny_loaded.tokenizer.decode(list(cut.token_ids))) <= len(cut.text)
    assert len(cut.token_logprobs) == len(cut.token_ids)


def test_logprobs_are_the_models_temperature_one_logprobs(tiny_loaded):
    teacher = Teacher(tiny_loaded)
    (gen,) = teacher.generate(PROMPTS[1:2], SamplingParams(max_new_tokens=8, temperature=0.5, seed=2, logprobs=5))
    assert len(gen.token_logprobs) == len(gen.top_logprobs) == gen.n_tokens == 8
    rescored = tiny_loaded.token_logprobs([list(gen.prompt_ids) + list(gen.token_ids)])[0][-gen.n_tokens:]
    np.testing.assert_allclose(gen.token_logprobs, rescored, atol=1e-4)
    for token, lp, top in zip(gen.token_ids, gen.token_logprobs, gen.top_logprobs):
        assert len(top) == 5 and [v for _, v in top] == sorted((v for _, v in top), reverse=True)
        if token in dict(top):
            assert dict(top)[token] == pytest.approx(lp, abs=1e-5)
        else:
            assert lp <= top[-1][1] + 1e-6


def test_no_top_logprobs_unless_asked(tiny_loaded):
    (gen,) = Teacher(tiny_loaded).generate(PROMPTS[:1], SamplingParams(max_new_tokens=4, seed=1))
    assert gen.top_logprobs == () and len(gen.token_logprobs) == 4


def test_watermark_processor_is_applied_and_switchable(tiny_loaded):
    scheme = FakeScheme(delta=8.0)
    teacher = Teacher(tiny_loaded, watermark=scheme)
    params = SamplingParams(max_new_tokens=32, seed=5, top_k=40, top_p=0.9, temperature=0.8, logprobs=2)
    marked = teacher.generate(PROMPTS, params)
    plain = teacher.generate(PROMPTS, params, watermark=False)
    green = lambda gens: np.mean([t % 4 == 0 for g in gens for t in g.token_ids])  # noqa: E731
    assert green(marked) > 0.9 and green(plain) < 0.5
    assert scheme.calls == [{"temperature": 0.8, "top_k": 40, "top_p": 0.9}]
    assert teacher.watermark_key_id == "fake-key-id" and Teacher(tiny_loaded).watermark_key_id is None
    # logprobs describe the watermarked distribution: green tokens dominate the top-2
    assert np.mean([tid % 4 == 0 for g in marked for top in g.top_logprobs for tid, _ in top]) > 0.9


def test_concurrent_callers_are_serialised(tiny_loaded):
    teacher = Teacher(tiny_loaded)
    params = SamplingParams(max_new_tokens=10, seed=11)
    expected = teacher.generate(PROMPTS, params)
    results, errors = [None] * 4, []

    def work(i):
        try:
            results[i] = teacher.generate(PROMPTS, params)
        except Exception as exc:  # pragma: no cover - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and all(r == expected for r in results)


def test_progress_reports_every_prompt(tiny_loaded):
    seen = []

    class Recorder:
        from contextlib import contextmanager

        @contextmanager
        def task(self, description, total=None):
            class T:
                def advance(self, n=1):
                    seen.append(n)

                def update(self, **kw):
                    pass

            seen.append(("total", total))
            yield T()

    Teacher(tiny_loaded).generate(PROMPTS, SamplingParams(max_new_tokens=2), batch_size=2, progress=Recorder())
    assert seen[0] == ("total", 3) and sum(seen[1:]) == 3


@pytest.mark.parametrize("kwargs,fragment", [
    ({"max_new_tokens": 0}, "max_new_tokens=0"),
    ({"temperature": -1.0}, "temperature=-1.0"),
    ({"top_p": 0.0}, "top_p=0.0"),
    ({"top_k": -3}, "top_k=-3"),
    ({"logprobs": 21}, "logprobs=21"),
    ({"stop": ("",)}, "stop"),
])
def test_bad_sampling_params(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        SamplingParams(**kwargs)


def test_stop_accepts_a_single_string():
    assert SamplingParams(stop="\n\n").stop == ("\n\n",)


def test_bad_generate_inputs(tiny_loaded):
    teacher = Teacher(tiny_loaded)
    with pytest.raises(InputDataError, match="prompt 2 is empty"):
        teacher.generate(["ok", " "], SamplingParams(max_new_tokens=2))
    with pytest.raises(InputDataError, match="batch_size"):
        teacher.generate(["ok"], SamplingParams(max_new_tokens=2), batch_size=0)


def test_prompt_longer_than_the_context_is_rejected(tiny_loaded):
    limit = tiny_loaded.model.config.max_position_embeddings
    with pytest.raises(InputDataError, match=f"prompt 1 has .* context of {limit}"):
        Teacher(tiny_loaded).generate(["word " * limit], SamplingParams(max_new_tokens=2))
