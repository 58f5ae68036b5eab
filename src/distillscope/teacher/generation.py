"""Generation with the teacher: sampling parameters, batched left-padded generation, watermark.

Log-probabilities are recorded by :class:`LogprobRecorder`, a logits processor placed right
after the watermark processor: transformers runs the caller's processors before its sampling
warpers (temperature, top-k, top-p), so the recorder sees the *watermarked logits at
temperature 1*. At each step it keeps the top-k of their log_softmax and, one step later,
reads the logprob of the token that was actually chosen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from distillscope.errors import ConfigError

logger = logging.getLogger(__name__)

MAX_LOGPROBS = 20


@dataclass(frozen=True)
class SamplingParams:
    """How to sample.

    max_new_tokens: most tokens to generate (>= 1). temperature: 0 means greedy decoding.
    top_p: nucleus mass in (0, 1] (1 = off). top_k: keep the k best tokens (0 = off); keep it
    on for the 4-bit 135M teacher, which drifts without it. seed: same seed + same prompts +
    same batch size gives the same output (None: torch's global RNG). stop: strings that end
    the answer (cut before the first one, finish_reason "stop"). logprobs: how many top
    (token_id, logprob) pairs to return per generated token (0..20).
    """

    max_new_tokens: int = 128
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 50
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        object.__setattr__(self, "stop", tuple(self.stop))
        checks = [
            (isinstance(self.max_new_tokens, int) and self.max_new_tokens >= 1, "max_new_tokens",
             "use a whole number >= 1"),
            (self.temperature >= 0, "temperature", "use 0 (greedy) or a positive number"),
            (0 < self.top_p <= 1, "top_p", "use a number in (0, 1]"),
            (isinstance(self.top_k, int) and self.top_k >= 0, "top_k", "use a whole number >= 0 (0 = off)"),
            (self.seed is None or isinstance(self.seed, int), "seed", "use a whole number"),
            (all(isinstance(s, str) and s for s in self.stop), "stop", "use non-empty strings"),
            (isinstance(self.logprobs, int) and 0 <= self.logprobs <= MAX_LOGPROBS, "logprobs",
             f"use a whole number between 0 and {MAX_LOGPROBS}"),
        ]
        for ok, name, hint in checks:
            if not ok:
                raise ConfigError(f"invalid sampling parameter {name}={getattr(self, name)!r}", hint=hint)


@dataclass(frozen=True)
class Generation:
    """One answer. ``token_ids`` exclude the end-of-sequence token and anything from a stop string on.

    finish_reason: "stop" (end of sequence or a stop string), "length" (max_new_tokens), or
    "cancelled" (an ``on_token`` callback asked to stop; the tokens up to that one are kept).

    token_logprobs[i]: logprob of token_ids[i]; top_logprobs[i]: the ``params.logprobs`` best
    (token_id, logprob) pairs at that step (empty tuples when logprobs=0). Both come from the
    log_softmax of the watermarked logits at temperature 1.
    """

    prompt_ids: tuple[int, ...]
    token_ids: tuple[int, ...]
    text: str
    finish_reason: str
    token_logprobs: tuple[float, ...] = ()
    top_logprobs: tuple[tuple[tuple[int, float], ...], ...] = ()

    @property
    def n_tokens(self) -> int:
        return len(self.token_ids)


def _processor_base():
    from transformers import LogitsProcessor, StoppingCriteria

    return LogitsProcessor, StoppingCriteria


def make_recorder(k: int):
    """A logits processor that records log_softmax top-k and chosen-token logprobs (see module doc)."""
    import torch

    LogitsProcessor, _ = _processor_base()

    class LogprobRecorder(LogitsProcessor):
        def __init__(self) -> None:
            self.k, self._last, self.chosen, self.top = k, None, [], []

        def __call__(self, input_ids, scores):
            if self._last is not None:
                self.chosen.append(self._last.gather(1, input_ids[:, -1:]).squeeze(1).cpu())
            self._last = torch.log_softmax(scores.float(), dim=-1)
            if self.k:
                top = self._last.topk(self.k, dim=-1)
                self.top.append((top.indices.cpu(), top.values.cpu()))
            return scores

        def step(self, tokens):
            """This step's logprobs of ``tokens`` [batch] and its top-k (ids, values) or None."""
            if self._last is None:
                return [float("nan")] * len(tokens), None
            chosen = self._last.gather(1, tokens.to(self._last.device).unsqueeze(1)).squeeze(1).tolist()
            return chosen, (self.top[-1] if self.k and self.top else None)

        def finish(self, last_tokens) -> None:
            if self._last is not None:
                self.chosen.append(self._last.gather(1, last_tokens.unsqueeze(1)).squeeze(1).cpu())
                self._last = None

    return LogprobRecorder()


def make_stop_criteria(tokenizer: Any, stops: Sequence[str], prompt_len: int):
    """Stops each sequence once its recent text contains one of ``stops``."""
    import torch

    _, StoppingCriteria = _processor_base()
    window = max(len(s) for s in stops) + 4

    class StopOnStrings(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            tails = input_ids[:, prompt_len:][:, -window:].tolist()
            done = [any(s in tokenizer.decode(t, skip_special_tokens=True) for s in stops) for t in tails]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return StopOnStrings()


@dataclass(frozen=True)
class TokenStep:
    """One generated token, handed to ``Teacher.generate(on_token=...)`` as soon as it is sampled.

    index: the prompt's position in the caller's list; position: the token's position in the
    answer (0-based); logprob and top: as in :class:`Generation` (watermarked logits at
    temperature 1; ``top`` is empty when ``params.logprobs`` is 0). End-of-sequence tokens are
    not handed over; the tokens of a stop string are (the final :class:`Generation` cuts them).
    """

    index: int
    position: int
    token_id: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


def make_token_hook(on_token: Callable[[TokenStep], bool | None], indices: Sequence[int], eos_ids: Sequence[int],
                    recorder: Any, inner: Any = None):
    """A stopping criterion that hands every new token to ``on_token`` (row ``r`` is prompt ``indices[r]``).

    It runs right after each sampling step, inside ``model.generate``: the callback sees tokens
    while the answer is still being generated. A callback that returns ``False`` stops its row
    (the other rows of the batch go on). ``inner``: the stop-string criterion, whose verdict it
    combines with its own, so rows that are finished get no further (padding) tokens.
    """
    import torch

    _, StoppingCriteria = _processor_base()
    eos = set(eos_ids)

    class TokenHook(StoppingCriteria):
        def __init__(self) -> None:
            self.done = [False] * len(indices)
            self.emitted = [0] * len(indices)
            self.cancelled = [False] * len(indices)

        def __call__(self, input_ids, scores, **kwargs):
            if inner is not None:
                stop = inner(input_ids, scores)
            else:
                stop = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
            tokens = input_ids[:, -1]
            chosen, top = recorder.step(tokens)
            stopped, cancel = stop.tolist(), [False] * len(indices)
            for row, token in enumerate(tokens.tolist()):
                if self.done[row]:
                    continue
                if token in eos:
                    self.done[row] = True
                    continue
                pairs = tuple(zip(top[0][row].tolist(), top[1][row].tolist())) if top is not None else ()
                keep = on_token(TokenStep(indices[row], self.emitted[row], token, float(chosen[row]), pairs))
                self.emitted[row] += 1
                if keep is False:
                    self.done[row] = self.cancelled[row] = cancel[row] = True
                elif stopped[row]:
                    self.done[row] = True
            return stop | torch.tensor(cancel, dtype=torch.bool, device=input_ids.device)

    return TokenHook()
