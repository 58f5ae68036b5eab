"""Passive attribution: are the suspect's answers unusually close to our teacher's?

No watermark is needed, so this survives watermark-removal attacks (paraphrasing the harvested
data), which weaken both radioactivity tests. It corroborates; it never convicts.

Statistic. For an answer x to prompt q, its *teacher affinity* is
``d(x) = (log p_teacher(x | q) − max_j log p_ref_j(x | q)) / len(x)`` (nats per character, so models
with different tokenizers compare): how much more the teacher than any independent reference model
expects this text. A model's statistic is its mean affinity over a fixed prompt set.

Null hypothesis. It is a population one, tested against a zoo of independent models
(:mod:`distillscope.audit.zoo`): H0_zoo, the suspect's mean affinity is exchangeable with the zoo's.
An earlier version compared the suspect with one control by a sign test. That null ("no closer to
the teacher than this control") is not "not trained on our outputs": a control that imitates the
reference model has a low affinity by construction, so almost any model beat it, and an innocent
model was accused at p = 4.9e-16. The per-prompt sign count against the control is still shown,
as a description, never as a p-value.

Identity probes ("who made you?") are recorded as observations, never as p-values.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Sequence

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
