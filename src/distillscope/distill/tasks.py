"""A built-in task set with known answers, for comparing a student with its teacher.

Four categories, generated deterministically from a seed: arithmetic, unit conversion,
capitals and simple logic (120 items by default). Each item has a prompt that asks for a short
answer and the accepted answers; :func:`score_answer` extracts one final answer from a model's
reply and compares it exactly (a reply that lists several candidates scores nothing).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

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


KINDS = ("yesno", "number", "choice", "short")


@dataclass(frozen=True)
class TaskItem:
    """One question with its accepted answers and how a reply is scored (see :func:`score_answer`).

    kind: "yesno", "number", "choice" (the answer is one of ``options``) or "short" (a name);
    empty: inferred from the answers (yes/no, all numeric, else short). options: the choices a
    "choice" question offers.
    """

    category: str
    prompt: str
    answers: tuple[str, ...]
    kind: str = ""
    options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.answers:
            raise ValueError(f"task {self.prompt!r} has no accepted answer")
        kind = self.kind or ("choice" if self.options else "yesno" if self.answers[0] in ("yes", "no")
                             else "number" if all(_number(a) is not None for a in self.answers) else "short")
        if kind not in KINDS:
            raise ValueError(f"unknown task kind {kind!r}; use one of {', '.join(KINDS)}")
        if kind == "choice" and not self.options:
            raise ValueError(f"the choice task {self.prompt!r} lists no options")
        object.__setattr__(self, "kind", kind)


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
                                  (str(max(a, b)),), kind="choice", options=(str(a), str(b))))
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


# --- scoring: extract one final answer from a reply, then compare it exactly -------------------------

_MARKER = re.compile(r"\b(?:final answer|answer)\s*(?:is|:)|=|####")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w]|\.\d)")
_YESNO = re.compile(r"\b(yes|no)\b")
_FILLER = re.compile(r"^(?:so |thus )?(?:it is|it s|that is|the capital(?: city)?(?: of .+?)? is)\s+")
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


def _number(text: str) -> Decimal | None:
    """``text`` as a number when it is one (digits, optional thousands commas and decimals), else None."""
    if not re.fullmatch(r"\d[\d,]*(?:\.\d+)?", text.strip()):
        return None
    try:
        return Decimal(text.strip().replace(",", ""))
    except InvalidOperation:
        return None


def _final_segment(reply: str) -> str:
    """The text after the last answer marker ("answer is", "answer:", "=", "####"), else the whole reply."""
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", reply.lower())   # 3,000 -> 3000
    markers = list(_MARKER.finditer(text))
    return text[markers[-1].end():] if markers else text


def _numbers(text: str) -> list[Decimal]:
    out: list[Decimal] = []
    for match in _NUMBER.finditer(text):
        value = _number(match.group())
        if value is not None and value not in out:
            out.append(value)
    return out


def extract_number(reply: str, question: str = "") -> Decimal | None:
    """The reply's numeric answer, or None when it has none or several.

    In the final segment (see :func:`_final_segment`): one distinct number is the answer; with
    several, numbers that restate the question are dropped and exactly one new number must stay
    (when all of them restate the question, the last one is the answer, as in "50 - 25 = 25").
    """
    found = _numbers(_final_segment(reply))
    if len(found) <= 1:
        return found[0] if found else None
    asked = set(_numbers(question.lower()))
    new = [v for v in found if v not in asked]
    if not new:
        return found[-1]
    return new[0] if len(new) == 1 else None


def _normalise(text: str) -> str:
    """SQuAD-style: lower case, punctuation and articles dropped, whitespace collapsed."""
    text = re.sub(r"[^a-z0-9 ]+", " ", text.lower())
    return " ".join(_ARTICLES.sub(" ", text).split())


def _short_answer(reply: str) -> str:
    """The first non-empty line's final segment, normalised, without a leading "it is" / "the capital of X is"."""
    line = next((ln for ln in reply.splitlines() if ln.strip()), "")
    return _FILLER.sub("", " ".join(re.sub(r"[^a-z0-9 ]+", " ", _final_segment(line)).split()), count=1)


def score_answer(item: TaskItem, reply: str) -> bool:
    """Whether ``reply`` answers ``item``; strict, one final answer must be extractable.

    * yesno: the final segment contains "yes" or "no" but not both, and it is the answer;
    * number: :func:`extract_number` equals an accepted answer numerically (3,000 = 3000, 7.5 != 7);
    * choice: exactly one of the item's options is mentioned in the final segment, and it is right;
    * short: the first line (after an answer marker and a leading "it is" / "the capital of X is")
      equals an accepted answer after normalisation (case, punctuation, articles, spaces).

    The final segment is the text after the last answer marker ("answer is", "answer:", "=", "####"),
    else the whole reply. A reply that lists several candidates therefore scores nothing.
    """
    if item.kind == "yesno":
        said = set(_YESNO.findall(_final_segment(reply)))
        return said == {item.answers[0]}
    if item.kind == "number":
        value = extract_number(reply, item.prompt)
        return value is not None and any(value == _number(a) for a in item.answers)
    if item.kind == "choice":
        segment = _final_segment(reply)
        numbers = set(_numbers(segment))
        words = _normalise(segment).split()
        named = {o for o in item.options
                 if (_number(o) in numbers if _number(o) is not None else _contains(words, _normalise(o)))}
        return len(named) == 1 and named.pop() in item.answers
    answer = _normalise(_short_answer(reply))
    return any(answer == _normalise(a) for a in item.answers)


def _contains(words: list[str], phrase: str) -> bool:
    target = phrase.split()
    return bool(target) and any(words[i:i + len(target)] == target for i in range(len(words) - len(target) + 1))


_NAME = re.compile(r"[A-Za-z][A-Za-z' .-]{0,40}")


def follows_instruction(item: TaskItem, reply: str) -> bool:
    """Whether ``reply`` is in the form the prompt asked for, right or wrong: *just* a number ("Answer
    with just the number"), *just* yes or no ("Answer yes or no"), *just* a name of at most four words
    ("Answer with just the city name"); surrounding spaces, one trailing full stop and an ending
    ``<eos>`` are allowed, anything else (a sentence, an explanation, a second line) is not."""
    text = reply.strip()
    text = text[:-1].rstrip() if text.endswith(".") else text
    if not text or "\n" in text:
        return False
    if item.kind == "yesno":
        return text.lower() in ("yes", "no")
    if item.kind in ("number", "choice"):
        return _number(text) is not None
    return bool(_NAME.fullmatch(text)) and len(text.split()) <= 4
