"""The built-in prompt generator: many categories, topics and phrasings, seeded and reproducible.

Vocabulary lives in :mod:`prompt_data`, template families in :mod:`prompt_data_families`.
A template id is ``FAMILY/VARIANT`` (``math.change/2`` is paraphrase 2 of the "change" word
problem); a chain-of-thought request appends ``+cotK`` (suffix K of :data:`COT_SUFFIXES`), so
``math.change/2+cot0`` names exactly how a prompt was asked. Simulators of benign users and of
distillers use the building blocks (:meth:`PromptGenerator.sample`, :meth:`~PromptGenerator.render`,
:meth:`~PromptGenerator.paraphrases`): what is asked is never the giveaway, how it is asked is.

>>> gen = PromptGenerator(seed=1)
>>> items = gen.generate(3)
>>> len({i.prompt for i in items})
3
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

from distillscope.distill.prompt_data import COT_SUFFIXES
from distillscope.distill.prompt_data_families import FAMILIES, Family
from distillscope.errors import DistillError

__all__ = ["CATEGORIES", "COT_SUFFIXES", "TOPICS", "PromptGenerator", "PromptItem", "Template"]

CATEGORIES: tuple[str, ...] = tuple(dict.fromkeys(f.category for f in FAMILIES))
TOPICS: tuple[str, ...] = tuple(dict.fromkeys(t for f in FAMILIES for t in f.topics))
_FAMILY_BY_NAME: dict[str, Family] = {f.name: f for f in FAMILIES}
_MAX_CONSECUTIVE_DUPLICATES = 5000
_TEMPLATE_ID = re.compile(r"^(?P<family>[a-z]+\.[a-z]+)/(?P<variant>\d+)(?:\+cot(?P<cot>\d+))?$")


@dataclass(frozen=True)
class PromptItem:
    """One generated prompt. ``answer`` is the known answer (maths, logic, classification) or None."""

    prompt: str
    category: str
    topic: str
    template_id: str
    answer: str | None = None
    cot: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Template:
    """One phrasing: paraphrase ``variant`` of ``family``; ``text`` has ``{slot}`` placeholders."""

    id: str
    family: str
    category: str
    variant: int
    text: str
    topics: tuple[str, ...]
    cot_ok: bool

    @property
    def slots(self) -> tuple[str, ...]:
        """Slot names in ``text`` (e.g. ``("concept", "audience")``), in order of appearance."""
        return tuple(dict.fromkeys(name for _, name, _, _ in string.Formatter().parse(self.text) if name))


def _templates_of(family: Family) -> tuple[Template, ...]:
    return tuple(Template(f"{family.name}/{i}", family.name, family.category, i, text, family.topics, family.cot_ok)
                 for i, text in enumerate(family.texts))


_TEMPLATES: dict[str, Template] = {t.id: t for f in FAMILIES for t in _templates_of(f)}


def _parse_template_id(template_id: str) -> tuple[Template, int | None]:
    m = _TEMPLATE_ID.match(template_id)
    base = f"{m['family']}/{m['variant']}" if m else template_id
    if base not in _TEMPLATES:
        raise DistillError(f"unknown prompt template {template_id!r}",
                           hint="use an id from PromptGenerator().templates(), e.g. 'math.change/0' or "
                                "'qa.define/1+cot0'")
    cot = int(m["cot"]) if m and m["cot"] is not None else None
    if cot is not None and cot >= len(COT_SUFFIXES):
        raise DistillError(f"template {template_id!r} names chain-of-thought suffix {cot}",
                           hint=f"suffixes are numbered 0..{len(COT_SUFFIXES) - 1}")
    return _TEMPLATES[base], cot


class PromptGenerator:
    """Seeded, reproducible prompts over many categories, topics and phrasings.

    ``seed`` fixes :meth:`generate`; ``categories`` restricts it (default: all of :data:`CATEGORIES`);
    ``cot_rate`` is the share of prompts, among families where it fits, that ask for step-by-step
    reasoning with one of :data:`COT_SUFFIXES`.
    """

    def __init__(self, seed: int = 0, categories: Sequence[str] | None = None, cot_rate: float = 0.2) -> None:
        self.seed = seed
        self.categories = tuple(categories) if categories else CATEGORIES
        unknown = [c for c in self.categories if c not in CATEGORIES]
        if unknown:
            raise DistillError(f"unknown prompt categories: {', '.join(unknown)}",
                               hint=f"choose from {', '.join(CATEGORIES)}")
        if not 0.0 <= cot_rate <= 1.0:
            raise DistillError(f"cot_rate={cot_rate} is outside [0, 1]", hint="pass a share such as 0.2")
        self.cot_rate = cot_rate

    # --- building blocks ------------------------------------------------------------------------
    @property
    def topics(self) -> tuple[str, ...]:
        """Topics reachable from this generator's categories."""
        return tuple(dict.fromkeys(t for f in self._families() for t in f.topics))

    def templates(self, category: str | None = None) -> tuple[Template, ...]:
        """All templates (every paraphrase of every family), optionally of one category."""
        return tuple(t for t in _TEMPLATES.values()
                     if t.category in self.categories and (category is None or t.category == category))

    @staticmethod
    def template(template_id: str) -> Template:
        """The template with this id (a ``+cotK`` suffix is accepted and ignored)."""
        return _parse_template_id(template_id)[0]

    @staticmethod
    def paraphrases(template_id: str) -> tuple[str, ...]:
        """Ids of every paraphrase of the same request (the family), including this one."""
        family = _FAMILY_BY_NAME[_parse_template_id(template_id)[0].family]
        return tuple(t.id for t in _templates_of(family))

    def sample(self, rng: random.Random, category: str | None = None, topic: str | None = None,
               cot: bool | None = None) -> PromptItem:
        """One prompt drawn with ``rng``; ``category``/``topic`` restrict it, ``cot`` forces CoT on/off."""
        families = self._families(category, topic)
        if not families:
            raise DistillError(f"no prompt template covers category={category!r} topic={topic!r}",
                               hint=f"topics of this generator: {', '.join(self.topics)}")
        family = rng.choice(families)
        template = _TEMPLATES[f"{family.name}/{rng.randrange(len(family.texts))}"]
        return self._render(template, rng, topic, cot)

    def render(self, template_id: str, rng: random.Random, topic: str | None = None,
               cot: bool | None = None, slots: Mapping[str, object] | None = None) -> PromptItem:
        """Fill the slots of one template with values drawn from ``rng``.

        ``template_id`` may end in ``+cotK`` to use chain-of-thought suffix K; otherwise ``cot``
        (None: no suffix) decides, with the suffix drawn from ``rng``. ``slots`` overrides drawn
        values (names in :attr:`Template.slots`); the known answer is then dropped (None), since
        it was computed from the drawn values.
        """
        template, cot_index = _parse_template_id(template_id)
        if topic is not None and topic not in template.topics:
            raise DistillError(f"template {template.id!r} does not cover topic {topic!r}",
                               hint=f"its topics: {', '.join(template.topics[:8])}")
        unknown = sorted(set(slots or {}) - set(template.slots))
        if unknown:
            raise DistillError(f"template {template.id!r} has no slot(s) {', '.join(unknown)}",
                               hint=f"its slots: {', '.join(template.slots) or 'none'}")
        if cot_index is not None:
            return self._render(template, rng, topic, True, cot_index, slots)
        return self._render(template, rng, topic, bool(cot), None, slots)

    def generate(self, n: int) -> list[PromptItem]:
        """``n`` distinct prompts, the same ones for the same seed and categories."""
        if n < 0:
            raise DistillError(f"cannot generate n={n} prompts", hint="pass a non-negative count")
        rng = random.Random(self.seed)
        seen: set[str] = set()
        out: list[PromptItem] = []
        misses = 0  # consecutive duplicates: a long run means the space is exhausted
        while len(out) < n:
            if misses > _MAX_CONSECUTIVE_DUPLICATES:
                raise DistillError(f"only {len(out)} distinct prompts could be generated for categories "
                                   f"{', '.join(self.categories)}", hint="ask for fewer or add categories")
            item = self.sample(rng, category=rng.choice(self.categories))
            if item.prompt in seen:
                misses += 1
                continue
            misses = 0
            seen.add(item.prompt)
            out.append(item)
        return out

    # --- internals ------------------------------------------------------------------------------
    def _families(self, category: str | None = None, topic: str | None = None) -> list[Family]:
        if category is not None and category not in CATEGORIES:
            raise DistillError(f"unknown prompt category {category!r}", hint=f"choose from {', '.join(CATEGORIES)}")
        return [f for f in FAMILIES
                if f.category in self.categories and (category is None or f.category == category)
                and (topic is None or topic in f.topics)]

    def _render(self, template: Template, rng: random.Random, topic: str | None, cot: bool | None,
                cot_index: int | None = None, overrides: Mapping[str, object] | None = None) -> PromptItem:
        family = _FAMILY_BY_NAME[template.family]
        topic = topic if topic is not None else rng.choice(family.topics)
        slots, answer = family.fill(rng, topic)
        if overrides:
            slots = {**slots, **overrides}
            answer = None
        text = template.text.format(**slots)
        if cot is None:
            cot = family.cot_ok and rng.random() < self.cot_rate
        template_id = template.id
        if cot:
            if cot_index is None:
                cot_index = rng.randrange(len(COT_SUFFIXES))
            text = f"{text}{chr(10) * 2 if chr(10) in text else ' '}{COT_SUFFIXES[cot_index]}"
            template_id = f"{template.id}+cot{cot_index}"
        return PromptItem(text, family.category, topic, template_id, answer, bool(cot))

