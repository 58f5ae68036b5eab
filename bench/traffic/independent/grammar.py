"""A small compositional text grammar: many phrasings from few lines, with per-speaker habits.

Template syntax (compiled once):

* ``(a|b|c)``  one of the alternatives (nestable; ``(a|)`` makes ``a`` optional);
* ``{rule}``   expand a named rule of the grammar (itself a list of templates);
* ``[var]``    a value supplied at expansion time (a topic, a language, a number ...);
* ``\\(`` ``\\[`` ``\\{`` ``\\|`` ``\\)``  the literal character.

Every choice point has a stable integer id. A :class:`Style` keeps only a deterministic subset
of the alternatives at each choice point (a speaker's habits: one person says "could you" and
never "would you"); styles compose, so the seed's *dialect* (which phrasings exist in this log
at all) and an account's *habits* are both applied. Two seeds therefore share the grammar but
not all of its phrasings, which is what makes seed 1 and seed 2 usable as calibration and test
sets for paraphrase-robust detectors.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

_MASK64 = (1 << 64) - 1


def mix64(*values: int) -> int:
    """A deterministic 64-bit integer hash (splitmix64 steps; never Python's salted ``hash``)."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (v & _MASK64)) & _MASK64
        h = (h + 0x9E3779B97F4A7C15) & _MASK64
        h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & _MASK64
        h ^= h >> 31
    return h


_GOLD = 0x9E3779B97F4A7C15


@dataclass(frozen=True)
class Style:
    """Keep about ``keep`` of the alternatives at each choice point (at least one)."""

    key: int
    keep: float
    limit: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "limit", int(self.keep * (1 << 14)))

    def allows_hash(self, h: int) -> bool:
        """``h``: the alternative's own hash (:func:`mix64` of choice id and index)."""
        return ((((self.key ^ h) * _GOLD) & _MASK64) >> 50) < self.limit

    def allows(self, node: int, i: int) -> bool:
        return self.allows_hash(mix64(node, i))

    def fallback(self, node: int, n: int) -> int:
        return mix64(self.key, node, 0xFA11) % n


NO_STYLE: tuple[Style, ...] = ()


class _Choice:
    __slots__ = ("node", "alts", "hashes")

    def __init__(self, node: int, alts: list[list]):
        self.node = node
        self.alts = alts
        self.hashes = [mix64(node, i) for i in range(len(alts))]


class _Ref:
    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name


class _Var:
    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name


def _node_id(text: str, pos: int) -> int:
    # Stable across runs and seeds: a hash of the template text and the position of the choice.
    v = 1469598103934665603
    for ch in text:
        v = ((v ^ ord(ch)) * 1099511628211) & _MASK64
    return mix64(v, pos)


def _parse(text: str, pos: int, stop: str) -> tuple[list, int, bool]:
    """Parse ``text`` from ``pos`` until one of ``stop``; returns (sequence, new pos, ended on '|')."""
    seq: list = []
    buf: list[str] = []
    while pos < len(text):
        ch = text[pos]
        if ch == "\\" and pos + 1 < len(text):      # \( \) \| \{ \[ : literal characters
            buf.append(text[pos + 1])
            pos += 2
            continue
        if ch in stop:
            break
        if ch == "(":
            if buf:
                seq.append("".join(buf))
                buf = []
            start = pos
            alts = []
            pos += 1
            while True:
                alt, pos, more = _parse(text, pos, "|)")
                alts.append(alt)
                if pos >= len(text):
                    raise ValueError(f"unclosed '(' in template {text!r}")
                pos += 1
                if not more:
                    break
            seq.append(_Choice(_node_id(text, start), alts))
            continue
        if ch in "{[":
            close = "}" if ch == "{" else "]"
            end = text.index(close, pos)
            if buf:
                seq.append("".join(buf))
                buf = []
            name = text[pos + 1:end]
            seq.append(_Ref(name) if ch == "{" else _Var(name))
            pos = end + 1
            continue
        buf.append(ch)
        pos += 1
    if buf:
        seq.append("".join(buf))
    return seq, pos, pos < len(text) and text[pos] == "|"


def compile_template(text: str) -> list:
    seq, pos, _ = _parse(text, 0, "")
    return seq


_SPACES = re.compile(r"[ \t]{2,}")
_BEFORE_PUNCT = re.compile(r" +([,.;:?!])")


def tidy(text: str) -> str:
    """Collapse doubled spaces, drop spaces before punctuation, capitalise the first letter."""
    text = _BEFORE_PUNCT.sub(r"\1", _SPACES.sub(" ", text)).strip().replace("?,", "?").replace(".,", ".")
    return text[:1].upper() + text[1:] if text else text


class Grammar:
    """Named rules, each a list of templates; :meth:`say` expands one rule."""

    def __init__(self, rules: Mapping[str, Sequence[str]]):
        self._rules: dict[str, _Choice] = {}
        for name, templates in rules.items():
            if isinstance(templates, str):
                templates = [templates]
            alts = [compile_template(t) for t in templates]
            self._rules[name] = _Choice(_node_id("rule:" + name, 0), alts)

    def __contains__(self, name: str) -> bool:
        return name in self._rules

    def say(self, rule: str, rng: random.Random, values: Mapping[str, str] | None = None,
            styles: Sequence[Style] = NO_STYLE, raw: bool = False) -> str:
        out: list[str] = []
        self._expand_choice(self._rules[rule], rng, values or {}, styles, out)
        text = "".join(out)
        return text if raw else tidy(text)

    def _expand_choice(self, choice: _Choice, rng: random.Random, values, styles, out) -> None:
        alts = choice.alts
        n = len(alts)
        if n == 1:
            self._expand(alts[0], rng, values, styles, out)
            return
        i = int(rng.random() * n)
        if styles and n >= 3:
            hashes = choice.hashes
            for _ in range(12):
                h = hashes[i]
                for s in styles:
                    if ((((s.key ^ h) * _GOLD) & _MASK64) >> 50) >= s.limit:
                        break
                else:
                    break
                i = int(rng.random() * n)
            else:
                i = styles[-1].fallback(choice.node, n)
        self._expand(alts[i], rng, values, styles, out)

    def _expand(self, seq: list, rng, values, styles, out) -> None:
        for part in seq:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, _Choice):
                self._expand_choice(part, rng, values, styles, out)
            elif isinstance(part, _Ref):
                rule = self._rules.get(part.name)
                if rule is None:
                    raise KeyError(f"grammar rule {{{part.name}}} is not defined")
                self._expand_choice(rule, rng, values, styles, out)
            else:
                value = values.get(part.name)
                if value is None:
                    raise KeyError(f"grammar variable [{part.name}] has no value")
                out.append(value)
