"""Protections applied to what a protected account receives, after generation.

* :func:`protect_logprobs` — the top-k log-probabilities a distiller's KD loss feeds on: keep fewer
  alternatives (top-k truncation), round them (coarser targets), and add calibrated noise (Gaussian
  on the log scale, seeded per request, then clipped to ≤ 0 and the list re-sorted). The chosen
  token's own log-probability is rounded the same way. Effect on KD: truncation to 1 alternative
  leaves only the sampled token (KD degenerates to SFT); rounding to d decimals bounds the target
  error by 0.5·10⁻ᵈ nats; noise of σ nats hides the tail ordering. See ``docs/countermeasures.md``.
* :func:`protect_reasoning` — chain-of-thought withheld (``answer-only``) or replaced by a one-line
  note (``summary``). Reasoning is found by explicit markup (``<think>…</think>``) or, failing that,
  by an explicit final-answer line ("Answer:", "Final answer:", "So the answer is …"); an answer with
  neither is returned unchanged, never guessed at.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Sequence

from distillscope.errors import ConfigError

TopLogprobs = Sequence[Sequence[tuple[int, float]]]


@dataclass(frozen=True)
class LogprobProtection:
    """``top_k``: most alternatives returned (None = as asked); ``decimals``: rounding (None = off);
    ``noise``: standard deviation in nats of Gaussian noise (0 = off)."""

    top_k: int | None = None
    decimals: int | None = None
    noise: float = 0.0

    def __post_init__(self) -> None:
        if self.top_k is not None and (isinstance(self.top_k, bool) or not 1 <= self.top_k <= 20):
            raise ConfigError(f"logprob protection: top_k must be 1..20, got {self.top_k!r}")
        if self.decimals is not None and not 0 <= self.decimals <= 6:
            raise ConfigError(f"logprob protection: decimals must be 0..6, got {self.decimals!r}")
        if not math.isfinite(self.noise) or not 0.0 <= self.noise <= 10.0:
            raise ConfigError(f"logprob protection: noise must be in [0, 10] nats, got {self.noise!r}")

    @property
    def active(self) -> bool:
        return self.top_k is not None or self.decimals is not None or self.noise > 0


def _value(x: float, p: LogprobProtection, rng: random.Random) -> float:
    if p.noise > 0:
        x += rng.gauss(0.0, p.noise)
    x = min(0.0, x)
    return round(x, p.decimals) if p.decimals is not None else x


def protect_logprobs(chosen: Sequence[float], top: TopLogprobs, protection: LogprobProtection, *,
                     seed: int = 0) -> tuple[list[float], list[list[tuple[int, float]]]]:
    """The chosen tokens' log-probabilities and the top alternatives, protected (module docstring)."""
    if not protection.active:
        return list(chosen), [list(t) for t in top]
    rng = random.Random(seed)
    out_chosen = [_value(x, protection, rng) for x in chosen]
    out_top = []
    for alts in top:
        alts = [(tok, _value(lp, protection, rng)) for tok, lp in alts]
        alts.sort(key=lambda a: -a[1])
        out_top.append(alts[:protection.top_k] if protection.top_k is not None else alts)
    return out_chosen, out_top


REASONING_MODES = ("off", "answer-only", "summary")
_THINK = re.compile(r"<think>.*?</think>\s*", re.S | re.I)
_FINAL = re.compile(r"^(?:\s*(?:final answer|answer|so the answer is|therefore,? the answer is)\b[:\s].*)$",
                    re.I | re.M)


def protect_reasoning(text: str, mode: str) -> str:
    """``text`` with its chain-of-thought withheld (``answer-only``) or summarised (``summary``)."""
    if mode not in REASONING_MODES:
        raise ConfigError(f"reasoning protection mode {mode!r} is not known", hint=f"use {', '.join(REASONING_MODES)}")
    if mode == "off":
        return text
    note = "[reasoning withheld]"
    if _THINK.search(text):
        answer = _THINK.sub("", text).strip()
        return answer if mode == "answer-only" else f"{note} {answer}".strip()
    finals = list(_FINAL.finditer(text))
    if not finals:
        return text
    final = text[finals[-1].start():].strip()
    if final == text.strip():
        return text
    return final if mode == "answer-only" else f"{note} {final}"
