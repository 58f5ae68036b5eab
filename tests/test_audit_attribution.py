"""Passive attribution's likelihood scoring: batched scoring gives the per-answer numbers."""

from __future__ import annotations

import pytest

from distillscope.audit.attribution import LikelihoodScorer, teacher_affinity

pytestmark = pytest.mark.usefixtures("torch_one_thread")

PROMPTS = ["What is 2 + 2?", "Name a colour.", "", "Say hi.", "Why is the sea salty?"]
ANSWERS = ["Four, of course.", "Blue", "An answer with no prompt at all.", "", "Rivers carry minerals into it."]


def test_batched_logprobs_match_one_at_a_time(tiny_loaded):
    scorer = LikelihoodScorer(tiny_loaded)
    batched = scorer.logprobs(PROMPTS, ANSWERS, batch_size=3)
    for prompt, answer, got in zip(PROMPTS, ANSWERS, batched):
        alone = scorer.logprobs([prompt], [answer], batch_size=1)[0]
        assert got == pytest.approx(alone, rel=1e-4, abs=1e-3)
        assert scorer.logprob(prompt, answer) == pytest.approx(alone, rel=1e-4, abs=1e-3)
    assert batched[3] == 0.0 and all(x < 0 for i, x in enumerate(batched) if i != 3)


def test_teacher_affinity_keeps_order_and_gaps(tiny_loaded, model_settings):
    from distillscope.teacher import load_model

    teacher, ref = LikelihoodScorer(tiny_loaded), LikelihoodScorer(load_model("tiny:3", settings=model_settings,
                                                                              dtype="float32"))
    texts = [ANSWERS[0], None, "  ", ANSWERS[4]] * 3
    prompts = [PROMPTS[0], PROMPTS[1], PROMPTS[2], PROMPTS[4]] * 3
    aff = teacher_affinity(prompts, texts, teacher, [ref])
    assert [a is None for a in aff] == [False, True, True, False] * 3
    expected = (teacher.logprob(PROMPTS[4], ANSWERS[4]) - ref.logprob(PROMPTS[4], ANSWERS[4])) / len(ANSWERS[4])
    assert aff[-1] == pytest.approx(expected, rel=1e-4, abs=1e-5)
    with pytest.raises(ValueError):
        teacher_affinity(prompts[:-1], texts, teacher, [ref])
