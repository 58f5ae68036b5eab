"""Radioactivity tests: does the suspect carry our watermark after training on our outputs?

Two modes (Sander et al. 2024, "Watermarking Makes Language Models Radioactive"):

* **reading mode** (open weights, same tokenizer): feed our watermarked texts through the
  suspect and score ``(watermark window, suspect's top-k next token)`` tuples with our key;
* **black-box mode** (any suspect): score the suspect's own answers, re-tokenised with our
  tokenizer, restricted to windows frequent in our watermarked corpus.

Why the selection rules make the p-value valid (H0: the suspect is independent of the key).
A tuple ``(w, y)`` is green with probability γ when ``y`` does not depend on the green list of
``w``. In reading mode the suspect's prediction at position t depends on the watermarked prefix,
whose tokens were drawn with the green lists of *earlier* windows. So a window is scored only at
its first appearance anywhere in what the suspect is fed (all prompts first, then the texts in
order): a window that occurs earlier in the prefix (or in a prompt) lets a copying model predict a
token that was drawn with this very green list, which makes clean models look radioactive. With
each window scored at its first appearance, the dependence between windows is a DAG ordered by
first appearance, so the scored bits are sequentially Bernoulli(γ) and the binomial tail is exact.
Duplicated tuples are scored once (a repeated tuple is the same coin, counted twice).

The rule is deliberately global (across texts), not per text, although a text's prefix holds only
its own tokens: with a per-text rule, text A meeting windows u then v and text B meeting v then u
score ``G_v[y_A(G_u)]`` and ``G_u[y_B(G_v)]``, a cycle. A suspect whose prediction after v in A
depends on whether some token is green for u (it can see u's watermarked successor in A's prefix),
and vice versa in B, makes the two bits positively correlated under H0 (P(both green) can exceed
γ²), and the binomial tail is no longer exact. The global order rules such cycles out, at the cost
of scoring each window once per corpus (for h = 1: at most one tuple per vocabulary entry with
top-1 predictions).

In black-box mode the suspect's answers do not depend on the key at all under H0; the filter
keeps windows by their *document frequency* in our corpus, which does not depend on the window's
own green list (the list is first used after the window is complete).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from distillscope.audit.combine import floor_p

logger = logging.getLogger(__name__)

Pair = tuple[tuple[int, ...], int]


@dataclass(frozen=True)
class TokenText:
    """A watermarked text as token ids of our tokenizer: what is fed before it, and the text."""

    prompt_ids: tuple[int, ...]
    answer_ids: tuple[int, ...]

    @property
    def stream(self) -> tuple[int, ...]:
        return self.prompt_ids + self.answer_ids


@dataclass(frozen=True)
class TupleSelection:
    """The tuples chosen for scoring, and what was dropped on the way."""

    pairs: tuple[Pair, ...]
    n_candidates: int
    n_duplicates: int
    n_seen_windows: int
    n_filtered: int = 0

    def summary(self) -> dict[str, int]:
        return {"candidates": self.n_candidates, "scored": len(self.pairs), "dropped_duplicate": self.n_duplicates,
                "dropped_window_seen_before": self.n_seen_windows, "dropped_by_frequency_filter": self.n_filtered}


def ngrams(ids: Sequence[int], h: int) -> Iterable[tuple[int, ...]]:
    """All h-grams of ``ids`` (h ≥ 1), in order."""
    for i in range(len(ids) - h + 1):
        yield tuple(ids[i:i + h])


def select_reading_pairs(texts: Sequence[TokenText], predictions: Sequence[Sequence[Sequence[int]]],
                         context_width: int, *, dedup: bool = True,
                         exclude_seen_windows: bool = True) -> TupleSelection:
    """Reading-mode tuples: ``(window before answer position t, suspect's predicted tokens at t)``.

    ``predictions[i][t]`` are the suspect's top-k tokens for ``texts[i].answer_ids[t]`` given the
    prompt and ``answer_ids[:t]``. With ``exclude_seen_windows`` a window is scored only where it
    first appears in everything fed to the suspect (prompts included); with ``dedup`` each tuple is
    scored once. Both default on; switching them off exists only to demonstrate the false positives
    they prevent.
    """
    h = context_width
    seen: set[tuple[int, ...]] = set()
    if exclude_seen_windows:
        for text in texts:
            seen.update(ngrams(text.prompt_ids, h))
    scored: set[Pair] = set()
    pairs: list[Pair] = []
    n_cand = n_dup = n_seen = 0
    for text, preds in zip(texts, predictions, strict=True):
        stream, start = text.stream, len(text.prompt_ids)
        for t, tops in enumerate(preds):
            pos = start + t
            if pos < h:
                continue
            window = tuple(stream[pos - h:pos])
            n_cand += len(tops)
            if exclude_seen_windows and window in seen:
                n_seen += len(tops)
                continue
            for y in tops:
                pair = (window, int(y))
                if dedup and pair in scored:
                    n_dup += 1
                    continue
                scored.add(pair)
                pairs.append(pair)
            if exclude_seen_windows:
                seen.add(window)
        if exclude_seen_windows:
            seen.update(ngrams(stream, h))
    return TupleSelection(tuple(pairs), n_cand, n_dup, n_seen)


def first_appearances(texts: Sequence[TokenText], context_width: int) -> list[set[int]]:
    """Per text, the answer positions :func:`select_reading_pairs` can score (with
    ``exclude_seen_windows``): those whose window appears there for the first time in everything
    fed. It depends on the texts alone, so predictions are needed only there."""
    h = context_width
    seen: set[tuple[int, ...]] = set()
    for text in texts:
        seen.update(ngrams(text.prompt_ids, h))
    out = []
    for text in texts:
        stream, start, here = text.stream, len(text.prompt_ids), set()
        for t in range(len(text.answer_ids)):
            pos = start + t
            if pos < h:
                continue
            window = tuple(stream[pos - h:pos])
            if window not in seen:
                here.add(t)
                seen.add(window)
        seen.update(ngrams(stream, h))
        out.append(here)
    return out


def window_document_frequency(texts: Iterable[Sequence[int]], context_width: int) -> Counter:
    """In how many texts each window occurs with a token after it (a watermarked position)."""
    df: Counter = Counter()
    for ids in texts:
        df.update(set(ngrams(ids[:-1], context_width)) if len(ids) > context_width else ())
    return df


def select_blackbox_pairs(answers: Sequence[Sequence[int]], context_width: int,
                          frequent_windows: set[tuple[int, ...]] | None, *, dedup: bool = True) -> TupleSelection:
    """Black-box tuples from the suspect's answers (our tokenizer), windows restricted to ``frequent_windows``."""
    h = context_width
    scored: set[Pair] = set()
    pairs: list[Pair] = []
    n_cand = n_dup = n_filtered = 0
    for ids in answers:
        for pos in range(h, len(ids)):
            window = tuple(ids[pos - h:pos])
            n_cand += 1
            if frequent_windows is not None and window not in frequent_windows:
                n_filtered += 1
                continue
            pair = (window, int(ids[pos]))
            if dedup and pair in scored:
                n_dup += 1
                continue
            scored.add(pair)
            pairs.append(pair)
    return TupleSelection(tuple(pairs), n_cand, n_dup, 0, n_filtered)


@dataclass(frozen=True)
class PairScore:
    """A detector's verdict on a tuple selection, with the curve and chunk scores for the plots."""

    n_scored: int
    score: float
    z: float
    p_value: float
    curve: tuple[tuple[int, float], ...]
    chunk_scores: tuple[float, ...]


def _curve_points(n: int, points: int) -> list[int]:
    if n <= 0:
        return []
    grid = {max(1, round(math.exp(math.log(n) * k / (points - 1)))) for k in range(points)} if points > 1 else set()
    return sorted(grid | {n})


def score_pairs(detector: Any, pairs: Sequence[Pair], *, curve_points: int = 24, chunk: int = 64) -> PairScore:
    """Score tuples with the watermark detector; also p-values on growing prefixes and chunk means."""
    pairs = list(pairs)
    if not pairs:
        return PairScore(0, 0.0, 0.0, 1.0, (), ())
    det = detector.score_pairs(pairs, dedup=True)
    curve = []
    for n in _curve_points(len(pairs), curve_points):
        d = det if n == len(pairs) else detector.score_pairs(pairs[:n], dedup=True)
        curve.append((int(d.n_scored), floor_p(d.p_value)))
    chunks = []
    for i in range(0, len(pairs) - chunk + 1, chunk):
        d = detector.score_pairs(pairs[i:i + chunk], dedup=True)
        if d.n_scored:
            chunks.append(float(d.score) / d.n_scored)
    return PairScore(int(det.n_scored), float(det.score), float(det.z), floor_p(det.p_value), tuple(curve),
                     tuple(chunks))


def corpus_pairs(texts: Sequence[TokenText], context_width: int) -> list[Pair]:
    """The corpus's own ``(window, token)`` tuples: used to check that the key matches the corpus."""
    pairs: list[Pair] = []
    for text in texts:
        stream, start = text.stream, len(text.prompt_ids)
        for pos in range(max(start, context_width), len(stream)):
            pairs.append((tuple(stream[pos - context_width:pos]), int(stream[pos])))
    return pairs
