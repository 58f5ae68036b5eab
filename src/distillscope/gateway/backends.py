"""Backends that generate text: the base class and the local (watermarked) teacher.

:class:`LocalBackend` serves the teacher runtime through a :class:`DynamicBatcher`; every
output is generated with the watermark processor on, and the scheme's key id is returned with
each output so the request log records it. The proxy backend lives in ``proxy.py``, the stub
in ``stub.py``; :func:`make_backend` picks one from the settings.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence

from distillscope.errors import GatewayError
from distillscope.gateway import responses
from distillscope.gateway.batching import BatchingConfig, DynamicBatcher
from distillscope.gateway.generation import (BackendInfo, Call, GeneratedChoice, GenerationOutput, finite_logprob,
                                             GenerationRequest, Prompt, Reply, TokenLogprob,
                                             generation_request)
from distillscope.gateway.schemas import ChatCompletionRequest, CompletionRequest
from distillscope.settings import Settings

logger = logging.getLogger(__name__)


# OpenAI's ``developer`` role replaces ``system`` for newer models ("developer messages are the new
# system messages"); the teacher's chat template knows only system, user and assistant.
_TEACHER_ROLE = {"developer": "system"}


def chat_prompt(req: ChatCompletionRequest) -> Prompt:
    return tuple({"role": _TEACHER_ROLE.get(m.role, m.role), "content": m.text()} for m in req.messages)


def _joined_text(outs: list[GenerationOutput]) -> str:
    texts = [c.text for o in outs for c in o.choices]
    return texts[0] if len(texts) == 1 else json.dumps(texts, ensure_ascii=False)


class GeneratingBackend:
    """Base of backends that generate text themselves; subclasses implement :meth:`generate`."""

    info: BackendInfo

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def generate(self, request: GenerationRequest) -> GenerationOutput:
        raise NotImplementedError

    async def _outputs(self, call: Call) -> list[GenerationOutput]:
        if isinstance(call.request, ChatCompletionRequest):
            return [await self.generate(generation_request(call, chat_prompt(call.request)))]
        assert isinstance(call.request, CompletionRequest)
        return list(await asyncio.gather(*(self.generate(generation_request(call, p))
                                           for p in call.request.prompts())))

    @staticmethod
    def _reply(outs: list[GenerationOutput], body: dict[str, Any] | None) -> Reply:
        return Reply(body=body, prompt_tokens=sum(o.prompt_tokens for o in outs),
                     completion_tokens=sum(c.completion_tokens for o in outs for c in o.choices),
                     completion_text=_joined_text(outs), watermark_key_id=outs[0].watermark_key_id)

    async def complete(self, call: Call) -> Reply:
        outs = await self._outputs(call)
        body = (responses.chat_body(call, outs[0]) if call.endpoint == "chat"
                else responses.completion_body(call, outs))
        return self._reply(outs, body)

    async def stream(self, call: Call) -> AsyncIterator[dict[str, Any] | Reply]:
        outs = await self._outputs(call)
        chunks = (responses.chat_chunks(call, outs[0]) if call.endpoint == "chat"
                  else responses.completion_chunks(call, outs))
        for chunk in chunks:
            yield chunk
        yield self._reply(outs, None)


def text_pieces(decode_prefix, n_tokens: int, text: str) -> tuple[str, ...]:
    """Split ``text`` into one piece per token by decoding growing prefixes of the token ids.

    Incomplete UTF-8 sequences (decoded as U+FFFD) yield empty pieces until they complete; text
    cut by a stop sequence ends the pieces early. The pieces always join to ``text``.
    """
    pieces: list[str] = []
    done = 0
    for i in range(1, n_tokens + 1):
        cur = decode_prefix(i)
        if cur.endswith("\ufffd"):
            pieces.append("")
            continue
        if text.startswith(cur):
            end = len(cur)
        elif cur.startswith(text):
            end = len(text)
        else:  # tokenizer clean-up changed earlier text: give up on token alignment
            return (text,) + ("",) * (n_tokens - 1) if n_tokens else ()
        end = max(end, done)
        pieces.append(text[done:end])
        done = end
    if done < len(text):
        if pieces:
            pieces[-1] += text[done:]
        else:
            pieces.append(text[done:])
    return tuple(pieces)


class LocalBackend(GeneratingBackend):
    """The local teacher, watermarked, behind a dynamic batcher.

    ``teacher`` follows the teacher runtime contract (``generate``, ``encode_prompt``);
    ``tokenizer`` decodes token ids; ``watermark`` is the scheme's ``config()`` (with
    ``key_id``), recorded with every output. Streams are sent token by token while the batch
    generates (:mod:`.streaming`).
    """

    def __init__(self, teacher: Any, tokenizer: Any, *, model_ids: Sequence[str], watermark: dict[str, Any],
                 batching: BatchingConfig | None = None, context_length: int | None = None,
                 fingerprint: str | None = None) -> None:
        self.teacher = teacher
        self.tokenizer = tokenizer
        self.context_length = context_length
        self.key_id = watermark.get("key_id")
        self.fingerprint = f"fp_{fingerprint[:12]}" if fingerprint else None
        self.info = BackendInfo(kind="local", model_ids=tuple(dict.fromkeys(model_ids)), watermarked=True,
                                watermark=dict(watermark))
        self.batch_counts: Counter[int] = Counter()   # batch size -> number of generate calls
        self.batch_observers: list[Callable[[int], None]] = []
        self.batcher: DynamicBatcher = DynamicBatcher(self._run_batch, batching, on_batch=self._on_batch)
        self._token_text: dict[int, str] = {}

    @classmethod
    def from_settings(cls, settings: Settings, batching: BatchingConfig | None = None) -> "LocalBackend":
        from distillscope.teacher import load_model
        from distillscope.watermark import scheme_from_settings

        loaded = load_model(settings.teacher, settings=settings, dtype=settings.dtype, device=settings.device)
        scheme = scheme_from_settings(settings)
        return cls.from_loaded(loaded, scheme, batching=batching, aliases=(settings.teacher,))

    @classmethod
    def from_loaded(cls, loaded: Any, scheme: Any, *, batching: BatchingConfig | None = None,
                    aliases: Sequence[str] = ()) -> "LocalBackend":
        from distillscope.teacher import Teacher

        config = getattr(loaded.model, "config", None)
        return cls(Teacher(loaded, watermark=scheme), loaded.tokenizer, model_ids=(loaded.name, *aliases),
                   watermark=scheme.config(), batching=batching,
                   context_length=getattr(config, "max_position_embeddings", None),
                   fingerprint=getattr(loaded, "fingerprint", None))

    def _on_batch(self, size: int) -> None:
        self.batch_counts[size] += 1
        for observe in self.batch_observers:
            observe(size)

    async def start(self) -> None:
        await self.batcher.start()

    async def close(self) -> None:
        await self.batcher.close()

    def _run_batch(self, prompts: list[Any], params: Any, sinks: list[Any] | None = None) -> list[Any]:
        if sinks is None:
            return self.teacher.generate(prompts, params, watermark=True, batch_size=len(prompts))

        def on_token(step: Any) -> bool | None:
            sink = sinks[step.index]
            return None if sink is None else sink(step)

        return self.teacher.generate(prompts, params, watermark=True, batch_size=len(prompts), on_token=on_token)

    def stream(self, call: Call) -> AsyncIterator[dict[str, Any] | Reply]:
        """Chunks as the tokens are generated (see :mod:`.streaming`), then the :class:`Reply`."""
        from distillscope.gateway.streaming import LiveStream

        return LiveStream(self, call).chunks()

    def releaser(self, stops: tuple[str, ...]) -> Any:
        from distillscope.gateway.streaming import TextReleaser

        return TextReleaser(lambda ids: self.tokenizer.decode(ids, skip_special_tokens=True), stops,
                            hold_whitespace=bool(getattr(self.tokenizer, "clean_up_tokenization_spaces", False)))

    def token_logprob(self, step: Any, request: GenerationRequest) -> TokenLogprob | None:
        from distillscope.gateway.streaming import step_logprob

        return step_logprob(self._text, step, request)

    def reply(self, outs: list[GenerationOutput]) -> Reply:
        return self._reply(outs, None)

    def sampling_params(self, req: GenerationRequest, seed: int | None) -> Any:
        from distillscope.teacher import SamplingParams

        k = max(req.logprobs, 1 if req.want_logprobs else 0)
        top_k = SamplingParams.top_k if req.top_k is None else req.top_k
        return SamplingParams(max_new_tokens=req.max_tokens, temperature=req.temperature, top_p=req.top_p,
                              top_k=top_k, seed=seed, stop=req.stop, logprobs=k)

    async def prompt_ids(self, request: GenerationRequest) -> list[int]:
        """The prompt's token ids; GatewayError when prompt + max_tokens overflow the context."""
        prompt = list(request.prompt) if isinstance(request.prompt, tuple) else request.prompt
        prompt_ids = await asyncio.to_thread(self.teacher.encode_prompt, prompt)
        if self.context_length and len(prompt_ids) + request.max_tokens > self.context_length:
            raise GatewayError(
                f"this model's context is {self.context_length} tokens; the prompt has {len(prompt_ids)} "
                f"and max_tokens asks for {request.max_tokens} more",
                hint="shorten the prompt or lower max_tokens", code="context_length_exceeded")
        return prompt_ids

    def submit(self, request: GenerationRequest, j: int, sink: Any = None) -> Awaitable[Any]:
        """Queue sample ``j`` of ``request`` with the batcher (seed + j; seeded samples run alone)."""
        prompt = list(request.prompt) if isinstance(request.prompt, tuple) else request.prompt
        seed = None if request.seed is None else request.seed + j
        return self.batcher.submit(prompt, self.sampling_params(request, seed), alone=seed is not None, sink=sink)

    async def generate(self, request: GenerationRequest) -> GenerationOutput:
        prompt = list(request.prompt) if isinstance(request.prompt, tuple) else request.prompt
        prompt_ids = await self.prompt_ids(request)
        generations = await asyncio.gather(*(self.submit(request, j) for j in range(request.n)))
        choices = tuple(self.choice(g, request) for g in generations)
        text = prompt if isinstance(prompt, str) else ""
        return GenerationOutput(choices=choices, prompt_tokens=len(prompt_ids), prompt_text=text,
                                watermark_key_id=self.key_id, system_fingerprint=self.fingerprint)

    def _text(self, token_id: int) -> str:
        text = self._token_text.get(token_id)
        if text is None:
            text = self.tokenizer.decode([token_id])
            self._token_text[token_id] = text
        return text

    def choice(self, gen: Any, request: GenerationRequest) -> GeneratedChoice:
        ids = list(gen.token_ids)
        pieces = text_pieces(lambda i: self.tokenizer.decode(ids[:i], skip_special_tokens=True), len(ids), gen.text)
        logprobs = None
        if request.want_logprobs and gen.token_logprobs is not None:
            tops = gen.top_logprobs or [()] * len(ids)
            logprobs = tuple(
                TokenLogprob(tid, self._text(tid), finite_logprob(lp),
                             tuple(TokenLogprob(int(a), self._text(int(a)), finite_logprob(alp))
                                   for a, alp in list(top)[:request.logprobs]))
                for tid, lp, top in zip(ids, gen.token_logprobs, tops))
        return GeneratedChoice(text=gen.text, finish_reason=gen.finish_reason, completion_tokens=len(ids),
                               logprobs=logprobs, pieces=pieces)


def make_backend(settings: Settings, batching: BatchingConfig | None = None) -> Any:
    """The backend the settings ask for: the proxy when ``upstream_url`` is set, else the local teacher."""
    if settings.upstream_url:
        from distillscope.gateway.proxy import ProxyBackend

        return ProxyBackend.from_settings(settings)
    return LocalBackend.from_settings(settings, batching)
