"""A built-in task set with known answers, for comparing a student with its teacher.

Four categories, generated deterministically from a seed: arithmetic, unit conversion,
capitals and simple logic (120 items by default). Each item has a prompt that asks for a short
answer and the accepted answers; :func:`score_answer` decides whether a model's reply is right.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

CATEGORIES = ("arithmetic", "units", "capitals", "logic")

_CAPITALS = (
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Japan", "Tokyo"),
    ("China", "Beijing"), ("Russia", "Moscow"), ("Egypt", "Cairo"), ("Canada", "Ottawa"),
    ("Australia", "Canberra"), ("Brazil", "Brasilia"), ("Argentina", "Buenos Aires"), ("Mexico", "Mexico City"),
    ("India", "New Delhi"), ("Kenya", "Nairobi"), ("Norway", "Oslo"), ("Sweden", "Stockholm"),
    ("Finland", "Helsinki"), ("Poland", "Warsaw"), ("Greece", "Athens"), ("Portugal", "Lisbon"),
    ("Ireland", "Dublin"), ("Austria", "Vienna"), ("Peru", "Lima"), ("Chile", "Santiago"),
    ("Thailand", "Bangkok"), ("Turkey", "Ankara"), ("South Korea", "Seoul"), ("Hungary", "Budapest"),
    ("Denmark", "Copenhagen"),
)
_UNITS = (  # (from unit, to unit, factor)
    ("kilometers", "meters", 1000), ("kilograms", "grams", 1000), ("hours", "minutes", 60),
    ("minutes", "seconds", 60), ("feet", "inches", 12), ("days", "hours", 24), ("liters", "milliliters", 1000),
    ("weeks", "days", 7), ("dollars", "cents", 100), ("yards", "feet", 3),
)


@dataclass(frozen=True)
class TaskItem:
    """One question with its accepted answers (compared case- and punctuation-insensitively)."""

    category: str
    prompt: str
    answers: tuple[str, ...]


def _arithmetic(rng: random.Random, n: int) -> list[TaskItem]:
    items = []
    for i in range(n):
        op = ("+", "-", "*")[i % 3]
        a, b = (rng.randint(11, 99), rng.randint(11, 99)) if op != "*" else (rng.randint(3, 12), rng.randint(3, 12))
        if op == "-" and b > a:
            a, b = b, a
        value = a + b if op == "+" else a - b if op == "-" else a * b
        items.append(TaskItem("arithmetic", f"What is {a} {op} {b}? Answer with just the number.", (str(value),)))
    return items


def _units(rng: random.Random, n: int) -> list[TaskItem]:
    items = []
    for i in range(n):
        src, dst, factor = _UNITS[i % len(_UNITS)]
        amount = rng.randint(2, 9)
        items.append(TaskItem("units", f"How many {dst} are in {amount} {src}? Answer with just the number.",
                              (str(amount * factor),)))
    return items


def _capitals(rng: random.Random, n: int) -> list[TaskItem]:
    pairs = list(_CAPITALS)
    rng.shuffle(pairs)
    return [TaskItem("capitals", f"What is the capital of {country}? Answer with just the city name.",
                     (city, city.replace(" ", "")) if " " in city else (city,))
            for country, city in (pairs * (n // len(pairs) + 1))[:n]]


def _logic(rng: random.Random, n: int) -> list[TaskItem]:
    items = []
    for i in range(n):
        kind = i % 4
        a, b = rng.sample(range(2, 60), 2)
        if kind == 0:
            items.append(TaskItem("logic", f"Is {a} greater than {b}? Answer yes or no.", ("yes" if a > b else "no",)))
        elif kind == 1:
            items.append(TaskItem("logic", f"Which is larger, {a} or {b}? Answer with just the number.",
                                  (str(max(a, b)),)))
        elif kind == 2:
            items.append(TaskItem("logic", f"Is {a} an even number? Answer yes or no.",
                                  ("yes" if a % 2 == 0 else "no",)))
        else:
            holds = rng.random() < 0.5
            fact = "It is raining." if holds else "It is not raining."
            items.append(TaskItem("logic", "If it is raining, the street is wet. " + fact +
                                  " Must the street be wet? Answer yes or no.", ("yes" if holds else "no",)))
    return items


def builtin_tasks(per_category: int = 30, seed: int = 0) -> tuple[TaskItem, ...]:
    """``per_category`` items of each category (4 x 30 = 120 by default), the same for a seed."""
    if per_category < 1:
        raise ValueError(f"per_category must be at least 1, got {per_category}")
    rng = random.Random(seed)
    return tuple(_arithmetic(rng, per_category) + _units(rng, per_category) + _capitals(rng, per_category)
                 + _logic(rng, per_category))


def _normalise(text: str) -> str:
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text.lower())   # 3,000 -> 3000
    return " ".join(re.sub(r"[^a-z0-9.\- ]+", " ", text).replace(". ", " ").split()).rstrip(".")


def score_answer(item: TaskItem, reply: str) -> bool:
    """Whether ``reply`` answers ``item``: for yes/no questions the first yes/no word decides;
    otherwise an accepted answer must appear as a whole word (number or name) in the reply."""
    words = _normalise(reply)
    if item.answers[0] in ("yes", "no"):
        first = re.search(r"\b(yes|no)\b", words)
        return bool(first) and first.group(1) == item.answers[0]
    for answer in item.answers:
        if re.search(rf"(?<![\w.]){re.escape(_normalise(answer))}(?![\w]|\.\d)", words):
            return True
    return False
