"""The content classifier: trained in-process on generated text, robust to paraphrases it never saw."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from distillscope.traffic.content import ContentModel, classifier_text, content_model, robustness
from distillscope.traffic.content_corpus import R_SENTENCES, N_SENTENCES, D_SYSTEMS, corpus

# Written for this test, never part of the training grammar (checked below).
REASONING = (
    "show your complete scratchpad work", "Before replying, jot down every thought you have about it.",
    "Give me your raw thinking, then the verdict.", "Please think out loud the whole way.",
    "Reveal each inference you made to get there.", "I'd like the full derivation, line by line.",
    "Narrate your problem-solving process before concluding.", "Work through it carefully, writing each step.",
    "Explain how you reason about each step before answering.", "Lay out all of your working in detail.",
    "Spell out the chain of reasoning that leads to the answer.", "Think this through step by step, please.",
    "Write down your intermediate calculations before the answer.", "Show every step of your logic.",
    "Reason about it step-by-step and then answer.", "Before the answer, share all your thinking.",
    "Please walk me through your thought process in full.", "Document your full reasoning trace first.",
    "Outline your reasoning completely, then conclude.", "Provide your step by step thinking first.",
    "Write out the entire derivation and your thoughts.", "Let's reason through this one carefully, step by step.",
    "Detail each step of your reasoning.", "Show all of your scratch work before the final result.",
)
NOT_REASONING = (
    "Only the answer, no working.", "Reply in one short sentence.", "What's your favourite colour?",
    "Show me a photo of a cat.", "Give me a step-by-step guide to knitting a scarf.", "Is this a good idea?",
    "Write a limerick about rain.", "Translate 'good morning' into German.", "Make it shorter please.",
    "List five fruits.", "What time is it in Tokyo?", "I think I lost my keys, any tips?",
    "Keep the answer under ten words.", "Summarise this paragraph.", "Recommend a book about space.",
    "What are the steps to reset my router?", "Tell me a joke.", "Answer yes or no.", "Define entropy briefly.",
    "Can you show me how the menu looks?",
)
DATAGEN = (
    "You are a data generator. Produce 30 trivia questions with answers as a JSON list.",
    "Act as a synthetic-data tool: output 50 JSONL lines, each with 'prompt' and 'response'.",
    "Create 25 labelled sentiment examples in JSON, fields text and label.",
    "Generate a dataset of 40 math word problems with solutions, JSON array format.",
)
NOT_DATAGEN = ("How do I read a JSON file in Python?", "What is a good dataset for image classification?",
               "Write a haiku about autumn.", "Explain what an API is.")


@pytest.fixture(scope="module")
def model() -> ContentModel:
    return content_model()


def test_test_phrasings_are_not_in_the_training_grammar():
    train = {t.text for t in corpus("train", 4000)}
    for text in (*REASONING, *NOT_REASONING, *DATAGEN, *NOT_DATAGEN):
        assert text not in R_SENTENCES + N_SENTENCES + D_SYSTEMS and text not in train


def test_held_out_paraphrases(model):
    r = robustness(model, n=2000)
    assert r.reasoning_accuracy >= 0.93 and r.reasoning_fpr <= 0.05
    assert r.datagen_accuracy >= 0.9 and r.datagen_fpr <= 0.02
    assert r.topic_accuracy >= 0.75
    assert r.task_accuracy >= 0.4              # ten categories, several overlapping (qa / explanation / advice)


def test_reasoning_elicitation_in_unseen_phrasings(model):
    base = "What is the sum of the first 20 odd numbers?"
    hits = model.predict([f"{base} {t}" for t in REASONING]).reasoning >= 0.5
    false = model.predict([f"{base} {t}" for t in NOT_REASONING]).reasoning >= 0.5
    assert hits.mean() >= 0.9, [t for t, h in zip(REASONING, hits) if not h]
    assert false.mean() <= 0.1, [t for t, f in zip(NOT_REASONING, false) if f]


def test_data_generation_requests_and_system_prompts(model):
    chats = [json.dumps([{"role": "system", "content": d.split(". ", 1)[0] + "."},
                         {"role": "user", "content": d.split(". ", 1)[-1]}]) for d in DATAGEN]
    texts = [classifier_text(c) for c in chats] + list(DATAGEN)
    assert (model.predict(texts).datagen >= 0.5).mean() >= 0.85
    assert (model.predict(list(NOT_DATAGEN)).datagen >= 0.5).sum() == 0
    assert classifier_text(chats[0]).startswith("You are a data generator.")   # the system prompt is read


def test_redacted_prompts_give_null_content_columns():
    from distillscope.traffic.prepare import prepare
    from distillscope.traffic.schema import load_log

    t = pa.table({"request_id": ["a", "b"], "ts": [1.7e9, 1.7e9 + 5], "account_id": ["x", "x"],
                  "prompt": [None, "Explain tides. Think step by step."]})
    p = prepare(load_log(t))
    for col in ("cot", "datagen", "task", "subject"):
        assert p.column(col).to_pylist()[0] is None
    assert p.column("cot").to_pylist()[1] == 1
    assert np.isfinite(p.column("subject").to_pylist()[1])
