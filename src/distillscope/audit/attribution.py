"""Passive attribution: are the suspect's answers closer to our teacher than the control's are?

No watermark is needed, so this test survives watermark-removal attacks (paraphrasing the
harvested data), which weaken both radioactivity tests.

Statistic. For an answer x to prompt q, its *teacher affinity* is
``d(x) = (log p_teacher(x | q) − max_j log p_ref_j(x | q)) / len(x)`` (nats per character, so models
with different tokenizers compare): how much more the teacher than any independent reference model
expects this text.

Null hypothesis (stated precisely, and the only one this p-value speaks to):
H0: on prompts drawn independently from our prompt set, the suspect's answer is no more likely than
the control's answer to the same prompt to have the higher teacher affinity, i.e.
``P(d(suspect) > d(control)) ≤ 1/2`` for each prompt, independently across prompts. It holds when
the suspect is no closer to the teacher than the control (an independent model of similar kind).
The test is the exact one-sided sign test on the paired differences (ties dropped): under H0 the
number of positive differences is stochastically at most Binomial(n, 1/2), so the binomial tail is
an exact or conservative p-value. When answers cannot be paired by prompt (a ``texts:`` corpus
without prompts), a one-sided permutation test on the mean difference is used; its Monte-Carlo
p-value ``(1 + #{perm ≥ observed}) / (1 + B)`` is valid by construction but cannot go below 1/(B+1).

Identity probes ("who made you?") are recorded as observations, never as p-values.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy import stats

from distillscope.audit.combine import floor_p
from distillscope.progress import Progress, ensure_progress

logger = logging.getLogger(__name__)

AFFINITY_BATCH = 8
"""Answers scored per forward pass of the teacher and of each reference model."""

IDENTITY_PROBES = ("Who made you?", "What model are you?", "Which company trained you, and what is your name?")


class LikelihoodScorer:
    """log p(answer | prompt) under one loaded model (teacher runtime ``LoadedModel``)."""

    def __init__(self, loaded: Any, *, max_length: int = 1024) -> None:
        self.loaded, self.max_length = loaded, max_length
        self.name = getattr(loaded, "name", "model")

    def _prefix(self, prompt: str) -> list[int]:
        from distillscope.teacher import Teacher

        if prompt:
            return list(Teacher(self.loaded).encode_prompt(prompt))
        bos = getattr(self.loaded.tokenizer, "bos_token_id", None)
        return [int(bos)] if bos is not None else []

    def logprob(self, prompt: str, answer: str) -> float:
        """Sum of the answer tokens' log-probabilities given the (chat-formatted) prompt."""
        return self.logprobs([prompt], [answer])[0]

    def logprobs(self, prompts: Sequence[str], answers: Sequence[str], *, batch_size: int = 8) -> list[float]:
        """:meth:`logprob` of each (prompt, answer) pair, scored ``batch_size`` sequences per forward pass."""
        seqs: list[tuple[list[int], int]] = []
        for prompt, answer in zip(prompts, answers, strict=True):
            prefix = self._prefix(prompt)
            ids = (prefix + list(self.loaded.tokenizer.encode(answer, add_special_tokens=False)))[: self.max_length]
            seqs.append((ids, max(1, len(prefix))))
        scorable = [i for i, (ids, start) in enumerate(seqs) if len(ids) >= 2 and len(ids) > start]
        out = [0.0] * len(seqs)
        lps = self.loaded.token_logprobs([seqs[i][0] for i in scorable], batch_size=batch_size) if scorable else []
        for i, lp in zip(scorable, lps):  # lp[j] = log p(ids[j+1] | ids[:j+1])
            out[i] = float(lp[seqs[i][1] - 1:].sum())
        return out


def teacher_affinity(prompts: Sequence[str], texts: Sequence[str | None], teacher: LikelihoodScorer,
                     references: Sequence[LikelihoodScorer], *, progress: Progress | None = None,
                     label: str = "teacher affinity") -> list[float | None]:
    """``d(x)`` per answer (None where there is no answer)."""
    if len(prompts) != len(texts):
        raise ValueError(f"{len(prompts)} prompts for {len(texts)} answers")
    out: list[float | None] = [None] * len(texts)
    rows = [i for i, text in enumerate(texts) if text and text.strip()]
    with ensure_progress(progress).task(label, total=len(texts)) as task:
        for b in range(0, len(rows), AFFINITY_BATCH):
            chunk = rows[b:b + AFFINITY_BATCH]
            ps, ts = [prompts[i] for i in chunk], [str(texts[i]) for i in chunk]
            lp_t = teacher.logprobs(ps, ts)
            lp_r = [max(col) for col in zip(*(r.logprobs(ps, ts) for r in references))]
            for i, t, r in zip(chunk, lp_t, lp_r):
                out[i] = (t - r) / max(1, len(texts[i]))
            task.advance(len(chunk))
        task.advance(len(texts) - len(rows))
    return out


@dataclass(frozen=True)
class SignTest:
    """The exact one-sided sign test on paired differences."""

    n: int          # pairs with a non-zero difference
    positives: int  # pairs where the first sample is more teacher-like
    p_value: float


def sign_test(first: Sequence[float], second: Sequence[float]) -> SignTest:
    """H1: ``first`` tends to exceed ``second``. p = P(Bin(n, 1/2) ≥ positives), ties dropped."""
    diffs = [a - b for a, b in zip(first, second, strict=True) if a != b]
    n, k = len(diffs), sum(d > 0 for d in diffs)
    if n == 0:
        return SignTest(0, 0, 1.0)
    log_p = stats.binom.logsf(k - 1, n, 0.5)
    return SignTest(n, k, floor_p(math.exp(log_p)))


def permutation_test(first: Sequence[float], second: Sequence[float], *, n_permutations: int = 9999,
                     seed: int = 0) -> float:
    """One-sided permutation test on the difference of means; valid Monte-Carlo p-value."""
    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if len(a) == 0 or len(b) == 0:
        return 1.0
    pooled = np.concatenate([a, b])
    observed = a.mean() - b.mean()
    rng = np.random.default_rng(seed)
    count = 0
    for _ in range(n_permutations):
        perm = rng.permutation(pooled)
        if perm[: len(a)].mean() - perm[len(a):].mean() >= observed - 1e-12:
            count += 1
    return floor_p((1 + count) / (1 + n_permutations))


@dataclass(frozen=True)
class PassiveOutcome:
    """The passive test of one model against another on the same prompts."""

    method: str
    n: int
    statistic: float
    statistic_name: str
    p_value: float
    mean_affinity: float


def compare_affinities(model: Sequence[float | None], other: Sequence[float | None], *, paired: bool,
                       seed: int = 0) -> PassiveOutcome:
    """Test whether ``model``'s answers are more teacher-like than ``other``'s."""
    if paired:
        pairs = [(a, b) for a, b in zip(model, other, strict=True) if a is not None and b is not None]
        st = sign_test([a for a, _ in pairs], [b for _, b in pairs])
        mean = float(np.mean([a for a, _ in pairs])) if pairs else 0.0
        return PassiveOutcome("exact one-sided sign test on per-prompt teacher-affinity differences",
                              st.n, st.positives / st.n if st.n else 0.0, "fraction of prompts more teacher-like",
                              st.p_value, mean)
    a = [x for x in model if x is not None]
    b = [x for x in other if x is not None]
    p = permutation_test(a, b, seed=seed)
    diff = float(np.mean(a) - np.mean(b)) if a and b else 0.0
    return PassiveOutcome("one-sided permutation test (9999 permutations) on mean teacher affinity; "
                          "answers not paired by prompt", len(a) + len(b), diff,
                          "mean affinity difference (nats/char)", p, float(np.mean(a)) if a else 0.0)
