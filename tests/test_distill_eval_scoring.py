"""The strict task scorer: one final answer is extracted from a reply and compared exactly."""

from __future__ import annotations

import pytest

from distillscope.distill.tasks import TaskItem, builtin_tasks, extract_number, score_answer

LARGER = TaskItem("logic", "Which is larger, 12 or 45? Answer with just the number.", ("45",),
                  kind="choice", options=("12", "45"))
SUM = TaskItem("arithmetic", "What is 50 - 25? Answer with just the number.", ("25",))
EVEN = TaskItem("logic", "Is 14 an even number? Answer yes or no.", ("yes",))
CAPITAL = TaskItem("capitals", "What is the capital of France? Answer with just the city name.", ("Paris",))


@pytest.mark.parametrize("item,reply", [
    (SUM, "24 25 26"), (SUM, "25 or 26"), (SUM, "It could be 24, 25 or 26."),
    (LARGER, "12 or 45"), (LARGER, "45 is larger than 12"),
    (EVEN, "yes or no"), (EVEN, "Yes. No, wait."),
    (CAPITAL, "Paris, Berlin, Rome"), (CAPITAL, "Lyon or Paris"), (CAPITAL, "Paris is one of the answers"),
])
def test_replies_that_list_candidates_no_longer_score(item, reply):
    assert score_answer(item, reply) is False


@pytest.mark.parametrize("item,reply", [
    (SUM, "25"), (SUM, "25."), (SUM, "The answer is 25."), (SUM, "50 - 25 = 25"), (SUM, "Answer: 25.0"),
    (LARGER, "45"), (LARGER, "The answer is 45."), (LARGER, "45 > 12, so the answer is 45"),
    (EVEN, "Yes."), (EVEN, "yes, 14 is even"),
    (CAPITAL, "Paris"), (CAPITAL, "paris."), (CAPITAL, "The capital of France is Paris.\nIt is big."),
    (CAPITAL, "It's Paris"), (CAPITAL, "Answer: Paris"),
])
def test_one_clear_right_answer_scores(item, reply):
    assert score_answer(item, reply) is True


@pytest.mark.parametrize("item,reply", [
    (SUM, "26"), (SUM, "250"), (SUM, "2.5"), (SUM, ""), (LARGER, "12"), (LARGER, "the larger one"),
    (EVEN, "No."), (CAPITAL, "Lyon"), (CAPITAL, "Parisian"),
])
def test_wrong_or_missing_answers_do_not_score(item, reply):
    assert score_answer(item, reply) is False


def test_extract_number_rules():
    assert extract_number("3,000 meters") == 3000
    assert extract_number("5 kilometers is 5000 meters", "How many meters are in 5 kilometers?") == 5000
    assert extract_number("first 12, then 13, answer: 14") == 14
    assert extract_number("12 and 13") is None
    assert extract_number("no number here") is None


def test_kinds_are_inferred_and_checked():
    assert SUM.kind == "number" and EVEN.kind == "yesno" and CAPITAL.kind == "short" and LARGER.kind == "choice"
    assert {t.kind for t in builtin_tasks()} == {"number", "choice", "yesno", "short"}
    with pytest.raises(ValueError):
        TaskItem("x", "q", ("a",), kind="essay")
    with pytest.raises(ValueError):
        TaskItem("x", "q", ("a",), kind="choice")


def test_builtin_answers_score_and_option_lists_do_not():
    for item in builtin_tasks():
        assert score_answer(item, item.answers[0]), item
        assert score_answer(item, f"The answer is {item.answers[0]}."), item
        if item.kind == "choice":
            assert not score_answer(item, " or ".join(item.options)), item


@pytest.mark.parametrize("item,reply", [
    (CAPITAL, "I have been to Paris and to Lyon, which one do you mean?"), (CAPITAL, "Not Paris."),
    (SUM, "I think 25 is wrong: it is 26"), (SUM, "Between 20 and 25, maybe 30"),
    (EVEN, "No idea, yes maybe"), (LARGER, "Both 12 and 45 are numbers"),
])
def test_an_answer_that_merely_contains_the_target_is_rejected(item, reply):
    assert item.answers[0].lower() in reply.lower()
    assert score_answer(item, reply) is False


@pytest.mark.parametrize("item,reply,ok", [
    (SUM, "25", True), (SUM, " 26.", True), (SUM, "The answer is 25.", False), (SUM, "25\nUser: more", False),
    (EVEN, "Yes.", True), (EVEN, "no", True), (EVEN, "Yes, 14 is even.", False),
    (CAPITAL, "Paris", True), (CAPITAL, "Buenos Aires.", True), (CAPITAL, "The capital of France is Paris.", False),
    (LARGER, "45", True), (LARGER, "45 is larger", False), (SUM, "", False),
])
def test_instruction_following_is_the_requested_form(item, reply, ok):
    from distillscope.distill.tasks import follows_instruction

    assert follows_instruction(item, reply) is ok
