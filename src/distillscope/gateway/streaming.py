"""Token-by-token streaming from the local teacher.

The batcher hands every sampled token to a sink (``Teacher.generate(on_token=...)``, called in
the generation thread); the sink forwards it to the request's event loop, where
:class:`TextReleaser` turns the tokens into text pieces. A piece goes out only once no later token
can change it: text that ends in an incomplete UTF-8 character, or in what may become a stop
string, (or, for tokenizers that clean up spaces, in whitespace) is held back until the next
token settles it. Each token leaves as one chunk (possibly with empty text, carrying its
log-probs); when the generation ends, its final :class:`Generation` supplies the rest, so the
streamed text always joins to the text a non-streamed request gets for the same seed.

Streams are batched like any other request (seeded ones run alone, as always): a streamed
request's first token comes after one batching window and one prefill; its last chunk waits
for the batch's generate call to return.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable

from distillscope.gateway import responses
from distillscope.gateway.generation import (Call, GeneratedChoice, GenerationOutput, GenerationRequest, Reply,
                                             TokenLogprob, finite_logprob, generation_request)

if TYPE_CHECKING:
    from distillscope.gateway.backends import LocalBackend

logger = logging.getLogger(__name__)


class TextReleaser:
    """One answer's tokens in, final text pieces out (one per token, see the module doc)."""

    def __init__(self, decode: Callable[[list[int]], str], stops: tuple[str, ...] = (), *,
                 hold_whitespace: bool = False) -> None:
        self.decode = decode
        self.stops = stops
        self.hold_whitespace = hold_whitespace
        self.tokens: list[int] = []
        self.sent_text = ""
        self.sent_tokens = 0
        self.stopped = False   # a stop string appeared: the rest comes from the final generation

    def _held(self, text: str) -> bool:
        if text.endswith("\ufffd") or (self.hold_whitespace and text[-1:].isspace()):
            return True
        return any(text.endswith(stop[:k]) for stop in self.stops for k in range(1, len(stop)))

    def push(self, token_id: int) -> list[str]:
        """Add a token; the pieces of the tokens that are now final (empty list: held back)."""
        if self.stopped:
            return []
        self.tokens.append(token_id)
        text = self.decode(self.tokens)
        if any(stop in text for stop in self.stops):
            self.stopped = True
            return []
        if self._held(text) or not text.startswith(self.sent_text):
            return []
        pieces, done = [], len(self.sent_text)
        for k in range(self.sent_tokens + 1, len(self.tokens) + 1):
            prefix = text if k == len(self.tokens) else self.decode(self.tokens[:k])
            end = len(prefix) if text.startswith(prefix) and not prefix.endswith("\ufffd") else done
            pieces.append(text[done:max(end, done)])
            done = max(end, done)
        self.sent_text, self.sent_tokens = text, len(self.tokens)
        return pieces

    def finish(self, choice: GeneratedChoice) -> list[str]:
        """The pieces of the answer's remaining tokens, from its final text (one per token)."""
        remaining = choice.completion_tokens - self.sent_tokens
        if not choice.text.startswith(self.sent_text):  # cannot happen with the hold-back rules above
            logger.warning("streamed text diverged from the final answer; the stream ends early")
            return [""] * max(remaining, 0)
        rest = choice.text[len(self.sent_text):]
        if remaining <= 0:
            return [rest] if rest else []
        if "".join(choice.pieces[:self.sent_tokens]) == self.sent_text:
            return list(choice.pieces[self.sent_tokens:])
        return [rest] + [""] * (remaining - 1)


@dataclass
class _Choice:
    index: int
    request: GenerationRequest
    prompt_pos: int
    releaser: TextReleaser
    cancelled: bool = False
    logprobs: list[TokenLogprob | None] = field(default_factory=list)


def _prompts(call: Call) -> list[Any]:
    from distillscope.gateway.backends import chat_prompt

    return [chat_prompt(call.request)] if call.endpoint == "chat" else list(call.request.prompts())


class LiveStream:
    """The chunks of one streamed request, produced as the teacher generates (:meth:`chunks`)."""

    def __init__(self, backend: "LocalBackend", call: Call) -> None:
        self.backend = backend
        self.call = call
        self.fp = backend.fingerprint
        self.requests = [generation_request(call, p) for p in _prompts(call)]

    def _sink(self, loop: asyncio.AbstractEventLoop, events: asyncio.Queue, ch: _Choice) -> Callable[[Any], bool]:
        def sink(step: Any) -> bool:   # runs in the generation thread
            if ch.cancelled:
                return False
            loop.call_soon_threadsafe(events.put_nowait, (ch, step))
            return True
        return sink

    def _token_chunk(self, ch: _Choice, piece: str, lp: TokenLogprob | None) -> dict[str, Any]:
        self.call.tally.add(ch.index, piece)
        if self.call.endpoint == "chat":
            return responses.chat_token_chunk(self.call, ch.index, piece, lp, self.fp)
        return responses.completion_text_chunk(self.call, ch.index, piece, logprob=lp)

    def _opening(self, ch: _Choice, prompt_text: str) -> dict[str, Any] | None:
        if self.call.endpoint == "chat":
            return responses.chat_role_chunk(self.call, ch.index, self.fp)
        if self.call.request.echo and prompt_text:
            return responses.completion_text_chunk(self.call, ch.index, prompt_text)
        return None

    def _finish_chunk(self, ch: _Choice, finish_reason: str) -> dict[str, Any]:
        if self.call.endpoint == "chat":
            return responses.chat_finish_chunk(self.call, ch.index, finish_reason, self.fp)
        return responses.completion_text_chunk(self.call, ch.index, "", finish_reason=finish_reason)

    async def chunks(self) -> AsyncIterator[dict[str, Any] | Reply]:
        """OpenAI chunks, then the :class:`Reply` for the log; closing it stops the generation."""
        backend, tally = self.backend, self.call.tally
        prompt_ids = [await backend.prompt_ids(r) for r in self.requests]   # errors before any chunk
        tally.prompt_tokens = sum(len(ids) for ids in prompt_ids)
        tally.watermark_key_id = backend.key_id
        loop, events = asyncio.get_running_loop(), asyncio.Queue()
        choices: list[_Choice] = []
        jobs: list[asyncio.Future] = []
        try:
            for pos, req in enumerate(self.requests):
                for j in range(req.n):
                    ch = _Choice(len(choices), req, pos, backend.releaser(req.stop))
                    job = asyncio.ensure_future(backend.submit(req, j, sink=self._sink(loop, events, ch)))
                    job.add_done_callback(lambda f, ch=ch: events.put_nowait((ch, f)))
                    choices.append(ch)
                    jobs.append(job)
            for ch in choices:
                text = ch.request.prompt if isinstance(ch.request.prompt, str) else ""
                if (chunk := self._opening(ch, text)) is not None:
                    yield chunk
            finals: dict[int, GeneratedChoice] = {}
            while len(finals) < len(choices):
                ch, item = await events.get()
                if isinstance(item, asyncio.Future):
                    final = backend.choice(item.result(), ch.request)   # raises a failed generation's error
                    finals[ch.index] = final
                    for t, piece in enumerate(ch.releaser.finish(final), start=ch.releaser.sent_tokens):
                        yield self._token_chunk(ch, piece, final.logprob_at(t))
                    yield self._finish_chunk(ch, final.finish_reason)
                    continue
                lp = backend.token_logprob(item, ch.request)
                ch.logprobs.append(lp)
                start = ch.releaser.sent_tokens
                for k, piece in enumerate(ch.releaser.push(item.token_id)):
                    yield self._token_chunk(ch, piece, ch.logprobs[start + k])
            outs = self._outputs(choices, finals, prompt_ids)
            if responses.wants_usage(self.call):
                yield responses.usage_chunk(self.call, tally.prompt_tokens,
                                            sum(c.completion_tokens for c in finals.values()), self.fp)
            yield backend.reply(outs)
        finally:   # the client left (or generation failed): stop the answers still being generated
            for ch in choices:
                ch.cancelled = True
            for job in jobs:
                if not job.done():
                    job.cancel()

    def _outputs(self, choices: list[_Choice], finals: dict[int, GeneratedChoice],
                 prompt_ids: list[list[int]]) -> list[GenerationOutput]:
        outs = []
        for pos, req in enumerate(self.requests):
            mine = tuple(finals[ch.index] for ch in choices if ch.prompt_pos == pos)
            outs.append(GenerationOutput(choices=mine, prompt_tokens=len(prompt_ids[pos]),
                                         prompt_text=req.prompt if isinstance(req.prompt, str) else "",
                                         watermark_key_id=self.backend.key_id,
                                         system_fingerprint=self.fp))
        return outs


def step_logprob(text_of: Callable[[int], str], step: Any, request: GenerationRequest) -> TokenLogprob | None:
    """A streamed token's log-prob entry (None when the request did not ask for log-probs)."""
    if not request.want_logprobs:
        return None
    top = tuple(TokenLogprob(int(a), text_of(int(a)), finite_logprob(v)) for a, v in step.top[:request.logprobs])
    return TokenLogprob(step.token_id, text_of(step.token_id), finite_logprob(step.logprob), top)
