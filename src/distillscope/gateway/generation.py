"""What the router hands a backend and what it gets back; the ``Backend`` protocol.

A backend serves one validated request (:class:`Call`) either whole (:meth:`Backend.complete`,
returning a :class:`Reply`) or as a stream of OpenAI chunk dicts ending with a
:class:`Reply` whose ``body`` is ``None`` (:meth:`Backend.stream`). Backends that generate
text themselves (the local teacher, the stub) derive from :class:`GeneratingBackend` and only
implement :meth:`GeneratingBackend.generate`; the proxy forwards bodies as they are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Literal, Protocol, Union, runtime_checkable

from distillscope.gateway.schemas import ChatCompletionRequest

Prompt = Union[str, tuple[dict[str, str], ...]]


@dataclass
class StreamTally:
    """What a stream has sent so far, kept by the backend, for the log row of a stream cut short.

    texts: per choice index, the text sent; completion_tokens: the tokens sent (one per chunk).
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    texts: dict[int, str] = field(default_factory=dict)
    watermark_key_id: str | None = None

    def add(self, index: int, piece: str) -> None:
        self.texts[index] = self.texts.get(index, "") + piece
        self.completion_tokens += 1

    def reply(self) -> "Reply":
        """The partial answer as a :class:`Reply` (``completion_text`` like a whole answer's)."""
        texts = [self.texts[i] for i in sorted(self.texts)]
        text = texts[0] if len(texts) == 1 else json.dumps(texts, ensure_ascii=False) if texts else ""
        return Reply(body=None, prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens,
                     completion_text=text, watermark_key_id=self.watermark_key_id)


@dataclass(frozen=True)
class Call:
    """One validated request, as the router hands it to a backend (``tally``: see :class:`StreamTally`)."""

    endpoint: Literal["chat", "completions"]
    request: Any  # ChatCompletionRequest | CompletionRequest
    request_id: str
    created: int
    model: str
    max_tokens: int
    tally: StreamTally = field(default_factory=StreamTally, compare=False, repr=False)


# OpenAI's API reports impossible tokens as -9999.0: JSON has no -inf, and the distortion-free
# (Gumbel) watermark makes every token but the chosen one impossible.
LOGPROB_FLOOR = -9999.0


def finite_logprob(value: float) -> float:
    """A log-probability that JSON can carry: -inf (and NaN) become :data:`LOGPROB_FLOOR`."""
    value = float(value)
    return value if value >= LOGPROB_FLOOR else LOGPROB_FLOOR


@dataclass(frozen=True)
class TokenLogprob:
    token_id: int
    token: str
    logprob: float
    top: tuple["TokenLogprob", ...] = ()


@dataclass(frozen=True)
class GeneratedChoice:
    """One completion. ``pieces`` are the streamed text pieces (one per token; they join to ``text``)."""

    text: str
    finish_reason: str
    completion_tokens: int
    logprobs: tuple[TokenLogprob, ...] | None
    pieces: tuple[str, ...]

    def logprob_at(self, t: int) -> TokenLogprob | None:
        """Token ``t``'s log-prob entry (None without log-probs)."""
        return self.logprobs[t] if self.logprobs is not None and t < len(self.logprobs) else None


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt, ``n`` samples, with OpenAI sampling semantics (temperature 0 = greedy)."""

    prompt: Prompt
    n: int = 1
    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int | None = None   # None: the backend's default; 0: off
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: int = 0          # top alternatives per token (0..20)
    want_logprobs: bool = False  # return the chosen tokens' log-probs (even with logprobs=0)


@dataclass(frozen=True)
class GenerationOutput:
    choices: tuple[GeneratedChoice, ...]
    prompt_tokens: int
    prompt_text: str = ""
    watermark_key_id: str | None = None
    system_fingerprint: str | None = None


@dataclass(frozen=True)
class Reply:
    """A served request: the body (``None`` at the end of a stream) and what the log needs."""

    body: dict[str, Any] | None
    prompt_tokens: int
    completion_tokens: int
    completion_text: str
    watermark_key_id: str | None = None
    status: int = 200


@dataclass(frozen=True)
class BackendInfo:
    """What ``/v1/models`` and ``/healthz`` say about a backend."""

    kind: str                       # "local" | "stub" | "proxy"
    model_ids: tuple[str, ...]      # empty: any model name is passed on (proxy without model list)
    watermarked: bool
    watermark: dict[str, Any] = field(default_factory=dict)  # scheme config incl. key_id, never the key
    warning: str | None = None


@runtime_checkable
class Backend(Protocol):
    info: BackendInfo

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def complete(self, call: Call) -> Reply: ...
    def stream(self, call: Call) -> AsyncIterator[dict[str, Any] | Reply]: ...


def generation_request(call: Call, prompt: Prompt) -> GenerationRequest:
    req = call.request
    return GenerationRequest(
        prompt=prompt, n=req.n, max_tokens=call.max_tokens,
        temperature=1.0 if req.temperature is None else req.temperature,
        top_p=1.0 if req.top_p is None else req.top_p,
        top_k=None if req.top_k is None else max(0, req.top_k), seed=req.seed, stop=req.stop_list(),
        logprobs=req.top_k_logprobs(),
        want_logprobs=bool(req.logprobs) if isinstance(req, ChatCompletionRequest) else req.logprobs is not None,
    )
