"""The built-in prompt generator: reproducible, diverse, with known answers where they exist."""

from __future__ import annotations

import random
import re
from collections import Counter
from fractions import Fraction

import pytest

from distillscope.distill import CATEGORIES, COT_SUFFIXES, TOPICS, PromptGenerator, PromptItem
from distillscope.errors import DistillError


def test_twenty_thousand_distinct_prompts_over_every_category():
    items = PromptGenerator(seed=0).generate(20_000)
    assert len(items) == 20_000
    assert len({i.prompt for i in items}) == 20_000
    counts = Counter(i.category for i in items)
    assert set(counts) == set(CATEGORIES)
    assert min(counts.values()) > 200
    assert len({i.template_id.split("+")[0] for i in items}) == len(PromptGenerator().templates())
    assert len({i.topic for i in items}) == len(TOPICS)


def test_same_seed_same_prompts_other_seed_other_prompts():
    a = PromptGenerator(seed=7).generate(300)
    assert a == PromptGenerator(seed=7).generate(300)
    b = PromptGenerator(seed=8).generate(300)
    assert len({i.prompt for i in a} & {i.prompt for i in b}) < 30


def test_categories_restrict_generation():
    items = PromptGenerator(seed=1, categories=["math", "reasoning"]).generate(500)
    assert {i.category for i in items} == {"math", "reasoning"}
    assert all(i.answer for i in items)


def test_items_are_frozen():
    item = PromptGenerator().generate(1)[0]
    with pytest.raises(AttributeError):
        item.prompt = "x"  # type: ignore[misc]


def _numbers(text: str) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", text)]


def test_maths_answers_are_correct():
    gen, rng = PromptGenerator(), random.Random(5)
    for _ in range(200):
        item = gen.render("math.change/0", rng)
        a, p, bill = _numbers(item.prompt)
        assert int(item.answer) == bill - a * p >= 0
        item = gen.render("math.speed/0", rng)
        d, t = _numbers(item.prompt)
        assert int(item.answer) * t == d
        item = gen.render("math.workers/0", rng)
        k, d, k2 = _numbers(item.prompt)
        assert int(item.answer) * k2 == k * d
        item = gen.render("reason.probability/0", rng)
        r, b = _numbers(item.prompt)
        want = Fraction(r if "is red" in item.prompt else b, r + b)
        assert Fraction(item.answer) == want
        item = gen.render("reason.weekday/0", rng)
        (k,) = _numbers(item.prompt)
        days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
        today = next(d for d in days if f"today is {d}" in item.prompt)
        assert item.answer == days[(days.index(today) + k) % 7]


def test_more_known_answers_are_correct():
    gen, rng = PromptGenerator(), random.Random(9)
    for _ in range(200):
        item = gen.render("math.discount/1", rng)
        price, pct = _numbers(item.prompt)
        assert float(item.answer) == pytest.approx(price * (100 - pct) / 100)
        item = gen.render("math.recipe/0", rng)
        s, q, s2 = _numbers(item.prompt)
        assert int(item.answer) * s == q * s2
        item = gen.render("math.clock/0", rng)
        h, m, dh, dm = _numbers(item.prompt)[:4]
        end = (h * 60 + m + dh * 60 + dm) % 1440
        assert item.answer == f"{end // 60:02d}:{end % 60:02d}" and f"{h:02d}:{m:02d}" in item.prompt
        item = gen.render("math.interest/1", rng)
        p, r, t = _numbers(item.prompt)
        assert float(item.answer) == pytest.approx(p * r * t / 100)
        item = gen.render("reason.sequence/0", rng)
        seq = _numbers(item.prompt)
        nxt = seq[-1] + (seq[1] - seq[0]) if seq[2] - seq[1] == seq[1] - seq[0] else seq[-1] * seq[1] // seq[0]
        assert int(item.answer) == nxt
        item = gen.render("reason.order/0", rng)
        names = re.findall(r"[A-Z][a-z]+", item.prompt)
        assert item.answer == (names[0] if re.search(r"the (tallest|oldest|fastest|heaviest|richest)",
                                                     item.prompt) else names[3])


def test_sentiment_and_topic_labels_match_the_text():
    gen, rng = PromptGenerator(), random.Random(2)
    for _ in range(100):
        item = gen.render("classify.sentiment/0", rng)
        assert item.answer in ("positive", "negative")
        item = gen.render("classify.topic/1", rng, topic="astronomy")
        assert item.answer == "astronomy" and "astronomy" in item.prompt


def test_render_uses_the_named_template_and_cot_suffix():
    gen, rng = PromptGenerator(), random.Random(0)
    item = gen.render("qa.define/2+cot3", rng, topic="biology")
    assert item.template_id == "qa.define/2+cot3" and item.cot and item.topic == "biology"
    assert item.prompt.startswith("Define ") and item.prompt.endswith(COT_SUFFIXES[3])
    plain = gen.render("qa.define/2", rng)
    assert not plain.cot and plain.template_id == "qa.define/2"


def test_render_with_explicit_slots():
    gen = PromptGenerator()
    assert gen.template("explain.simple/0").slots == ("concept", "audience")
    item = gen.render("explain.simple/0", random.Random(1), slots={"concept": "entropy", "audience": "to a cat"})
    assert item.prompt == "Explain entropy to a cat."
    fixed = gen.render("math.speed/0", random.Random(1), slots={"d": 100, "t": 4})
    assert "100 km in 4 hours" in fixed.prompt and fixed.answer is None
    with pytest.raises(DistillError, match="no slot.*colour"):
        gen.render("qa.define/0", random.Random(1), slots={"colour": "red"})


def test_sample_respects_category_topic_and_cot():
    gen, rng = PromptGenerator(), random.Random(4)
    for _ in range(50):
        item = gen.sample(rng, category="coding", topic="graphs", cot=True)
        assert (item.category, item.topic, item.cot) == ("coding", "graphs", True)
        assert "+cot" in item.template_id
    assert isinstance(gen.sample(rng), PromptItem)


def test_paraphrases_share_a_family():
    gen = PromptGenerator()
    ids = gen.paraphrases("explain.how/1+cot0")
    assert "explain.how/1" in ids and len(ids) >= 3
    assert all(i.startswith("explain.how/") for i in ids)
    texts = {gen.template(i).text for i in ids}
    assert len(texts) == len(ids)


def test_cot_rate_controls_reasoning_requests():
    none = PromptGenerator(seed=3, cot_rate=0.0).generate(500)
    assert not any(i.cot for i in none)
    many = PromptGenerator(seed=3, cot_rate=1.0, categories=["math"]).generate(200)
    assert all(i.cot for i in many)


@pytest.mark.parametrize("call, match", [
    (lambda: PromptGenerator(categories=["poetry"]), "unknown prompt categories: poetry"),
    (lambda: PromptGenerator().render("nope/0", random.Random()), "unknown prompt template 'nope/0'"),
    (lambda: PromptGenerator().render("qa.define/0+cot99", random.Random()), "suffix 99"),
    (lambda: PromptGenerator().render("math.change/0", random.Random(), topic="physics"), "does not cover"),
    (lambda: PromptGenerator().sample(random.Random(), category="math", topic="physics"), "no prompt template"),
    (lambda: PromptGenerator(categories=["advice"]).generate(50_000), "distinct prompts"),
    (lambda: PromptGenerator().generate(-1), "n=-1"),
])
def test_bad_requests_raise_distill_error(call, match):
    with pytest.raises(DistillError, match=match):
        call()


def test_prompt_generator_and_harvest_import_without_torch():
    """The traffic simulator and `harvest` use these; they must not pay for torch/transformers/TRL."""
    import subprocess
    import sys

    code = ("import sys; from distillscope.distill import PromptGenerator, HarvestStore, harvest; "
            "from distillscope.distill import train; "  # heavy names resolve lazily ...
            "assert callable(train); print(sorted(m for m in ('torch', 'trl') if m in sys.modules))")
    light = ("import sys; from distillscope.distill import PromptGenerator, HarvestStore, harvest; "
             "print(sorted(m for m in ('torch', 'transformers', 'trl') if m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", light], capture_output=True, text=True,
                          check=True).stdout.strip() == "[]"
    assert "torch" in subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                     check=True).stdout  # ... and do load it when asked for
