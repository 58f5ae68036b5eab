"""The watermark as a ``transformers.LogitsProcessor`` (works with ``model.generate``).

The processor holds no randomness of its own: every row's watermark depends only on the key and
that row's last ``context_width`` token ids, so results do not depend on the batch position, the
padding of other rows, the device or the torch version. Rows shorter than the context width are
left unchanged (the detector never scores those positions either).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from transformers import LogitsProcessor

from distillscope.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from distillscope.watermark.schemes import WatermarkScheme


@dataclass(frozen=True)
class SamplingSettings:
    """The sampling warpers ``generate`` applies after the watermark processor.

    temperature: >= 0 (default 1.0); 0 means greedy decoding, which has no randomness for the
    distortion-free scheme to replace, so the Gumbel scheme leaves greedy steps unchanged.
    top_k: 0 = off. top_p: in (0, 1], 1 = off.
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        t = float(self.temperature)
        if not math.isfinite(t) or t < 0:
            raise ConfigError(f"watermark processor: temperature must be >= 0, got {self.temperature!r}",
                              hint="use 0 for greedy decoding, 0.7 or 1.0 for sampling")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ConfigError(f"watermark processor: top_k must be an integer >= 0, got {self.top_k!r}")
        if not 0.0 < float(self.top_p) <= 1.0:
            raise ConfigError(f"watermark processor: top_p must be in (0, 1], got {self.top_p!r}")


def repeated_context(input_ids: torch.Tensor, h: int) -> torch.Tensor:
    """Per row: whether the last ``h`` ids already occurred as a window earlier in the row."""
    if input_ids.shape[-1] <= h:
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
    windows = input_ids.unfold(1, h, 1)                       # (B, L - h + 1, h)
    return (windows[:, :-1] == windows[:, -1:]).all(dim=-1).any(dim=-1)


class WatermarkProcessor(LogitsProcessor):
    """Applies ``scheme`` to the next-token scores of every row of a (left-padded) batch."""

    def __init__(self, scheme: "WatermarkScheme", sampling: SamplingSettings | None = None) -> None:
        self.scheme = scheme
        self.sampling = sampling or SamplingSettings()

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        h = self.scheme.context_width
        if input_ids.shape[-1] < h:
            return scores
        contexts = input_ids[:, -h:].to(torch.int64)
        if not self.scheme.skip_repeated:
            return self.scheme.apply(contexts, scores, self.sampling)
        fresh = ~repeated_context(input_ids, h)
        if bool(fresh.all()):
            return self.scheme.apply(contexts, scores, self.sampling)
        out = scores.clone()
        rows = fresh.nonzero().flatten()
        if rows.numel():
            out[rows] = self.scheme.apply(contexts[rows], scores[rows], self.sampling)
        return out

    def __repr__(self) -> str:
        return f"WatermarkProcessor({self.scheme.config()}, {self.sampling})"
