"""Detecting the watermark in token ids or text, with exact p-values.

Only generated tokens are scored, never the prompt; the first ``context_width`` tokens are scored
only when the prompt supplies their context. Each (score key, token) tuple counts once:
repeated n-grams would otherwise be counted as independent evidence and inflate significance.
Under the null (text written without the key) the deduplicated tuples are independent, each
green with probability exactly ``threshold / 2**53`` (KGW) or with ``-log(1-u)`` stochastically
below Exp(1) (Gumbel), so the binomial / gamma tails are exact / conservative.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import torch

from distillscope.errors import WatermarkError
from distillscope.progress import Progress, ensure_progress

if TYPE_CHECKING:  # pragma: no cover
    from distillscope.watermark.schemes import WatermarkScheme

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Detection:
    """The result of one detection.

    n_tokens: tokens (or pairs) given; n_scored: distinct tuples scored; score: green count (KGW)
    or sum of -log(1-u) (Gumbel); z: standardised score (None when nothing was scored);
    p_value: exact tail probability, never 0.0 (floored at the smallest normal double);
    log10_p: the exact tail in log10, finite far below the float range.
    """

    n_tokens: int
    n_scored: int
    score: float
    z: float | None
    p_value: float
    scheme: str
    key_id: str
    log10_p: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_ids(value: Any, what: str) -> list[int]:
    """A 1-D sequence of non-negative ints from a list, tuple, numpy array or tensor."""
    if isinstance(value, torch.Tensor):
        if value.dim() != 1:
            raise WatermarkError(f"{what} must be a 1-D sequence of token ids, got shape {tuple(value.shape)}",
                                 hint="detect one sequence at a time")
        value = value.tolist()
    elif hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise WatermarkError(f"{what} must be a sequence of token ids, got {type(value).__name__}",
                             hint="use detect_text() for text")
    out = []
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise WatermarkError(f"{what}[{i}] = {v!r} is not a token id (a non-negative integer)")
        out.append(v)
    return out


class WatermarkDetector:
    """Scores token ids (or text re-tokenised with ``tokenizer``) against one scheme."""

    def __init__(self, scheme: "WatermarkScheme", tokenizer: Any = None) -> None:
        self.scheme = scheme
        self.tokenizer = tokenizer

    def detect(self, token_ids: Any, *, prompt_ids: Any = None) -> Detection:
        """Score the generated ``token_ids``; ``prompt_ids`` may supply context, never scores."""
        gen = _as_ids(token_ids, "token_ids")
        prompt = _as_ids(prompt_ids, "prompt_ids") if prompt_ids is not None else []
        full = prompt + gen
        h = self.scheme.context_width
        start = max(len(prompt), h)
        contexts = [full[i - h:i] for i in range(start, len(full))]
        tokens = full[start:]
        return self._score(contexts, tokens, n_tokens=len(gen), dedup=True)

    def detect_text(self, text: str) -> Detection:
        """Re-tokenise ``text`` with the detector's tokenizer (no special tokens) and score it."""
        if self.tokenizer is None:
            raise WatermarkError("this detector has no tokenizer, so it cannot read text",
                                 hint="build it with scheme.detector(tokenizer=load_tokenizer('smollm2'))")
        if not isinstance(text, str):
            raise WatermarkError(f"detect_text expects a string, got {type(text).__name__}")
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self.detect(ids)

    def detect_batch(self, items: Sequence[str | Sequence[int]], *,
                     progress: Progress | None = None) -> list[Detection]:
        """Detect in many texts (strings) or token-id sequences, reporting progress."""
        results = []
        with ensure_progress(progress).task("detecting", total=len(items)) as task:
            for item in items:
                results.append(self.detect_text(item) if isinstance(item, str) else self.detect(item))
                task.advance()
        return results

    def score_pairs(self, pairs: Iterable[tuple[Sequence[int], int]], *, dedup: bool = True) -> Detection:
        """Score (context window, token) tuples, e.g. collected by the audit's reading mode."""
        h = self.scheme.context_width
        contexts, tokens = [], []
        for i, pair in enumerate(pairs):
            try:
                ctx, tok = pair
            except (TypeError, ValueError):
                raise WatermarkError(f"pair {i} is not a (context, token) tuple") from None
            ctx = _as_ids(ctx, f"pair {i} context")
            if len(ctx) != h:
                raise WatermarkError(f"pair {i} has a context of {len(ctx)} ids; scheme {self.scheme.name} "
                                     f"needs exactly {h}", hint="pass the last context_width ids before the token")
            contexts.append(ctx)
            tokens.append(_as_ids([tok], f"pair {i} token")[0])
        return self._score(contexts, tokens, n_tokens=len(tokens), dedup=dedup)

    def _score(self, contexts: list[list[int]], tokens: list[int], *, n_tokens: int, dedup: bool) -> Detection:
        scheme = self.scheme
        if not tokens:
            return Detection(n_tokens, 0, 0.0, None, 1.0, scheme.name, scheme.key.key_id, 0.0)
        tok = torch.tensor(tokens, dtype=torch.int64).unsqueeze(1)
        bits, keys = scheme.token_bits(torch.tensor(contexts, dtype=torch.int64), tok)
        bits, keys = bits[:, 0], keys[:, 0]
        if dedup:
            seen: set[tuple[int, int]] = set()
            keep = []
            for i, k in enumerate(zip(keys.tolist(), tokens)):
                if k not in seen:
                    seen.add(k)
                    keep.append(i)
            bits = bits[keep]
        n = int(bits.numel())
        score = scheme.statistic(bits)
        p_value, log10_p = scheme.tail(score, n)
        z = scheme.z(score, n)
        logger.debug("detection %s: %d tokens, %d scored, score %.3f, log10 p %.2f",
                     scheme.name, n_tokens, n, score, log10_p)
        return Detection(n_tokens, n, score, None if z is None or not math.isfinite(z) else z,
                         p_value, scheme.name, scheme.key.key_id, log10_p)
