"""The watermark schemes: KGW green lists (left-hash and self-hash) and Gumbel-max (Aaronson).

A scheme owns the keyed PRF, the logit transformation used during generation and the null
distribution used during detection, so the processor and the detector built from one scheme
object cannot drift apart. Every scheme maps a (context window, token) tuple to 53 uniform bits
(see :mod:`distillscope.watermark.prf`) plus a *score key*: two tuples with the same score key
and token always get the same bits, so the detector counts each (score key, token) once.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import TopPLogitsWarper

from distillscope.errors import ConfigError
from distillscope.settings import Settings
from distillscope.watermark import prf
from distillscope.watermark.detector import WatermarkDetector
from distillscope.watermark.keys import WatermarkKey
from distillscope.watermark.processor import SamplingSettings, WatermarkProcessor
from distillscope.watermark.pvalues import binomial_upper_tail, binomial_z, gamma_upper_tail, gamma_z

logger = logging.getLogger(__name__)

PERSON_KGW = b"dscope.kgw.v1"
PERSON_SELFHASH = b"dscope.kgwsh.v1"
PERSON_GUMBEL = b"dscope.gumbel.v1"


class WatermarkScheme(ABC):
    """What every scheme provides: the PRF, the generation rule and the null distribution."""

    skip_repeated: bool = False  # leave steps whose context window already occurred to plain sampling
    name: str
    key: WatermarkKey
    context_width: int

    # -- the keyed PRF -----------------------------------------------------------------------
    @abstractmethod
    def token_bits(self, contexts: torch.Tensor, tokens: torch.Tensor | None,
                   vocab_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """53-bit uniforms and score keys for ``tokens`` (N, K) after ``contexts`` (N, h).

        ``tokens=None`` means every id in ``range(vocab_size)`` for every row.
        """

    # -- generation ----------------------------------------------------------------------------
    @abstractmethod
    def apply(self, contexts: torch.Tensor, scores: torch.Tensor, sampling: SamplingSettings) -> torch.Tensor:
        """Watermarked next-token scores (B, V) given the last ``context_width`` ids (B, h)."""

    # -- detection -----------------------------------------------------------------------------
    @abstractmethod
    def statistic(self, bits: torch.Tensor) -> float:
        """Detection score of the (deduplicated) scored tokens' bits."""

    @abstractmethod
    def tail(self, score: float, n: int) -> tuple[float, float]:
        """Exact (or conservative) ``(p_value, log10_p)`` of ``score`` over ``n`` tuples under the null."""

    @abstractmethod
    def z(self, score: float, n: int) -> float | None:
        """Standardised score, for reading; ``None`` when nothing was scored."""

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """The scheme parameters (never the key)."""

    # -- shared --------------------------------------------------------------------------------
    def processor(self, *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> WatermarkProcessor:
        """A ``transformers.LogitsProcessor`` applying this scheme during ``model.generate``.

        Pass the sampling parameters ``generate`` will use (its warpers run after custom
        processors): KGW uses ``top_k`` only to skip hashing tokens that cannot be sampled (same
        output), the Gumbel scheme samples with all three itself.
        """
        return WatermarkProcessor(self, SamplingSettings(temperature=temperature, top_k=top_k, top_p=top_p))

    def detector(self, tokenizer: Any = None) -> WatermarkDetector:
        return WatermarkDetector(self, tokenizer)

    def config(self) -> dict[str, Any]:
        """Scheme name, parameters and key id: safe to log and store (never the key)."""
        return {"scheme": self.name, **self.params(), "key_id": self.key.key_id}

    def _codes(self, tokens: torch.Tensor | None, vocab_size: int | None, device: torch.device) -> torch.Tensor:
        """Token codes of ``tokens`` (N, K), or of the whole vocabulary as a (1, V) row."""
        cache: dict = self._cache  # type: ignore[attr-defined]
        if tokens is None:
            if vocab_size is None:
                raise ValueError("vocab_size is needed when tokens is None")
            ck = ("codes", vocab_size, str(device))
            if ck not in cache:
                cache[ck] = prf.token_codes(vocab_size, device)
            return cache[ck].unsqueeze(0)
        return prf.token_code_of(tokens)


def _left_hash_bits(scheme: WatermarkScheme, person: bytes, contexts: torch.Tensor, tokens: torch.Tensor | None,
                    vocab_size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-hash PRF: ``bits53(mix64(blake2b_key(context) XOR token_code(t)))``; score key = seed."""
    device = contexts.device
    seeds = prf.context_seeds(scheme.key.secret, person, contexts.tolist()).to(device).unsqueeze(1)
    codes = scheme._codes(tokens, vocab_size, device)
    z = torch.bitwise_xor(seeds, codes)
    return prf.bits53_(prf.mix64_(z)), seeds.expand_as(z)


def _validate_common(name: str, context_width: int) -> None:
    if isinstance(context_width, bool) or not isinstance(context_width, int) or not 1 <= context_width <= 64:
        raise ConfigError(f"{name}: context_width must be an integer from 1 to 64, got {context_width!r}")


@dataclass(frozen=True, eq=False)
class KGWScheme(WatermarkScheme):
    """Kirchenbauer et al. green-list watermark.

    Each (context, token) is green with probability ``gamma`` (``bits < threshold``); generation
    adds ``delta`` to green tokens' logits. ``self_hash=False`` (left-hash) seeds with the last
    ``context_width`` ids; ``self_hash=True`` uses the anchored min-hash of the window *and the
    candidate itself* (Kirchenbauer's "selfhash"), evaluated on the top candidates.
    """

    key: WatermarkKey = field(repr=False)
    gamma: float = 0.25
    delta: float = 2.0
    context_width: int = 1
    self_hash: bool = False
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.key, WatermarkKey):
            raise ConfigError(f"KGWScheme needs a WatermarkKey, got {type(self.key).__name__}")
        if not 0.0 < float(self.gamma) < 1.0:
            raise ConfigError(f"kgw: gamma must be strictly between 0 and 1, got {self.gamma!r}",
                              hint="0.25 is the usual choice")
        if not math.isfinite(float(self.delta)) or float(self.delta) < 0:
            raise ConfigError(f"kgw: delta must be a finite number >= 0, got {self.delta!r}", hint="try 2.0")
        _validate_common("kgw", self.context_width)

    @property
    def name(self) -> str:  # type: ignore[override]
        return "kgw-selfhash" if self.self_hash else "kgw"

    @property
    def threshold(self) -> int:
        """A token is green iff its 53 bits are below this integer."""
        return int(math.floor(float(self.gamma) * prf.U_SCALE))

    @property
    def green_probability(self) -> float:
        """The exact null probability of green, ``threshold / 2**53`` (equals gamma for dyadic gamma)."""
        return self.threshold / prf.U_SCALE

    def params(self) -> dict[str, Any]:
        return {"gamma": float(self.gamma), "delta": float(self.delta), "context_width": self.context_width,
                "self_hash": bool(self.self_hash)}

    def token_bits(self, contexts, tokens, vocab_size=None):
        if not self.self_hash:
            return _left_hash_bits(self, PERSON_KGW, contexts, tokens, vocab_size)
        return self._self_hash_bits(contexts, tokens, vocab_size)

    def _keyed_values(self, ids: torch.Tensor, vocab_size: int | None) -> torch.Tensor:
        """Keyed per-token values ``blake2b_key([t])``; a cached table when the vocabulary is known."""
        if vocab_size is not None:
            ck = ("keyed", vocab_size, str(ids.device))
            if ck not in self._cache:
                table = prf.keyed_token_table(self.key.secret, PERSON_SELFHASH, vocab_size)
                self._cache[ck] = table.to(ids.device)
            return self._cache[ck][ids]
        uniq, inverse = torch.unique(ids.cpu(), return_inverse=True)
        vals = prf.context_seeds(self.key.secret, PERSON_SELFHASH, ([int(t)] for t in uniq))
        return vals[inverse].to(ids.device)

    def _self_hash_bits(self, contexts, tokens, vocab_size):
        """Anchored min-hash: seed(w, t) = min_{a in w + [t]} mix64(k(a) XOR code(t))."""
        device = contexts.device
        if tokens is None:
            tokens = torch.arange(vocab_size, device=device).unsqueeze(0).expand(contexts.shape[0], -1)
        codes = prf.token_code_of(tokens)                              # (N, K)
        k_window = self._keyed_values(contexts, vocab_size)            # (N, h)
        k_self = self._keyed_values(tokens, vocab_size)                # (N, K)
        keyed = torch.cat([k_window.unsqueeze(2).expand(-1, -1, tokens.shape[1]), k_self.unsqueeze(1)], dim=1)
        pairs = prf.mix64_(keyed.bitwise_xor(codes.unsqueeze(1)))      # (N, h+1, K)
        seeds = prf.unsigned_min(pairs, dim=1)
        return prf.bits53_(prf.mix64_(seeds.bitwise_xor(codes))), seeds

    def _candidates(self, scores: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Per row: the top ids by logit and whether they hold every id top-k sampling can reach.

        After adding delta, a token can enter the top ``top_k`` only if its logit is at least the
        k-th largest logit minus delta. If the K-th largest logit of a row is already below that,
        the row's top K contain every such token, and biasing only them changes nothing that
        top-k sampling can see. Rows where this fails are processed over the whole vocabulary;
        the decision depends on the row alone, never on the rest of the batch.
        """
        vocab = scores.shape[-1]
        cap = max(4 * top_k, top_k + 64)
        if top_k <= 0 or cap >= vocab:
            return None
        vals, idx = scores.topk(cap, dim=-1)
        return idx, vals[:, -1] + float(self.delta) < vals[:, top_k - 1]

    def _bias(self, bits: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return (bits < self.threshold).to(dtype).mul_(float(self.delta))

    def apply(self, contexts, scores, sampling):
        cand = self._candidates(scores, sampling.top_k)
        if cand is None:
            bits, _ = self.token_bits(contexts, None, scores.shape[-1])
            return scores + self._bias(bits, scores.dtype)
        idx, exact = cand
        bits, _ = self.token_bits(contexts, idx, scores.shape[-1])
        out = scores.scatter_add(1, idx, self._bias(bits, scores.dtype))
        rows = (~exact).nonzero().flatten()
        if rows.numel():
            full, _ = self.token_bits(contexts[rows], None, scores.shape[-1])
            out[rows] = scores[rows] + self._bias(full, scores.dtype)
        return out

    def statistic(self, bits):
        return float((bits < self.threshold).sum())

    def tail(self, score, n):
        return binomial_upper_tail(int(score), n, self.green_probability)

    def z(self, score, n):
        return binomial_z(score, n, self.green_probability)


@dataclass(frozen=True, eq=False)
class GumbelScheme(WatermarkScheme):
    """Aaronson's Gumbel-max watermark: distortion-free keyed sampling.

    With uniforms ``u_t`` from the key and the last ``context_width`` ids, the next token is
    ``argmax_t u_t ** (1 / p_t)`` over the warped distribution ``p`` (temperature, top-k, top-p),
    which is an exact sample from ``p`` when the key is random. Detection sums ``-log(1 - u)``.

    ``skip_repeated``: when the current context window already occurred earlier in the row, the
    step is left to ordinary sampling instead (the keyed choice would repeat the earlier one and
    could lock the text into a loop); the detector deduplicates such tuples anyway.
    """

    key: WatermarkKey = field(repr=False)
    context_width: int = 4
    skip_repeated: bool = True
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    name = "gumbel"

    def __post_init__(self) -> None:
        if not isinstance(self.key, WatermarkKey):
            raise ConfigError(f"GumbelScheme needs a WatermarkKey, got {type(self.key).__name__}")
        _validate_common("gumbel", self.context_width)

    def params(self) -> dict[str, Any]:
        return {"context_width": self.context_width, "skip_repeated": bool(self.skip_repeated)}

    def token_bits(self, contexts, tokens, vocab_size=None):
        return _left_hash_bits(self, PERSON_GUMBEL, contexts, tokens, vocab_size)

    def apply(self, contexts, scores, sampling):
        vocab = scores.shape[-1]
        if sampling.temperature == 0:
            return scores
        warped = scores.float() / sampling.temperature
        idx = None
        if 0 < sampling.top_k < vocab:
            warped, idx = warped.topk(sampling.top_k, dim=-1)
        if sampling.top_p < 1.0:
            warped = TopPLogitsWarper(sampling.top_p)(None, warped)
        probs = warped.softmax(dim=-1).double()
        bits, _ = self.token_bits(contexts, idx, vocab)
        ranking = torch.log(prf.uniform_from_bits(bits)) / probs   # log(u ** (1/p)); -inf where p = 0
        choice = ranking.argmax(dim=-1, keepdim=True)
        chosen = idx.gather(1, choice) if idx is not None else choice
        out = torch.full_like(scores, -math.inf)
        return out.scatter_(1, chosen, 0.0)

    def statistic(self, bits):
        return float(-torch.log1p(-prf.uniform_from_bits(bits)).sum())

    def tail(self, score, n):
        return gamma_upper_tail(score, n)

    def z(self, score, n):
        return gamma_z(score, n)


SCHEMES = ("kgw", "kgw-selfhash", "gumbel")
_PARAMS = {"kgw": {"gamma", "delta", "context_width"}, "kgw-selfhash": {"gamma", "delta", "context_width"},
           "gumbel": {"context_width", "skip_repeated"}}


def make_scheme(name: str, key: WatermarkKey, **params: Any) -> WatermarkScheme:
    """Build a scheme by name: ``kgw``, ``kgw-selfhash`` (context width 4 by default) or ``gumbel``."""
    if name not in _PARAMS:
        raise ConfigError(f"unknown watermark scheme {name!r}", hint=f"use one of {', '.join(SCHEMES)}")
    unknown = sorted(set(params) - _PARAMS[name])
    if unknown:
        raise ConfigError(f"unknown parameter(s) for watermark scheme {name}: {', '.join(unknown)}",
                          hint=f"{name} takes {', '.join(sorted(_PARAMS[name]))}")
    if "context_width" in params and isinstance(params["context_width"], float) \
            and float(params["context_width"]).is_integer():
        params["context_width"] = int(params["context_width"])
    if name == "gumbel":
        return GumbelScheme(key, **params)
    if name == "kgw-selfhash":
        params.setdefault("context_width", 4)
        return KGWScheme(key, self_hash=True, **params)
    return KGWScheme(key, **params)


def scheme_from_settings(settings: Settings, key: WatermarkKey | None = None) -> WatermarkScheme:
    """The scheme named by ``settings.watermark_scheme`` with ``settings.watermark_params``."""
    scheme = make_scheme(settings.watermark_scheme, key or WatermarkKey.load(settings),
                         **dict(settings.watermark_params))
    logger.info("watermark scheme %s", scheme.config())
    return scheme
