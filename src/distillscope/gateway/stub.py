"""A stub backend with instant canned replies, and a stub OpenAI-compatible upstream server.

:class:`StubBackend` answers ``echo: <last message>`` (or a fixed ``reply``), one "token" per
word, with fake but well-formed log-probs; tests and the benchmark use it to measure the
gateway alone. :func:`stub_upstream_app` serves the same replies as a bare OpenAI-compatible
server (no accounts, no log): the upstream of proxy-mode tests and the "direct" side of the
benchmark. It records every request it receives in ``app.state.received``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from distillscope.gateway.backends import GeneratingBackend
from distillscope.gateway.generation import (BackendInfo, Call, GeneratedChoice, GenerationOutput,
                                             GenerationRequest, Reply, TokenLogprob)
from distillscope.gateway.responses import sse
from distillscope.gateway.schemas import ChatCompletionRequest, CompletionRequest

STUB_MODEL = "stub-echo"


class StubBackend(GeneratingBackend):
    """Instant, deterministic replies; ``delay_s`` simulates generation time."""

    def __init__(self, *, model_ids: tuple[str, ...] = (STUB_MODEL,), reply: str | None = None,
                 delay_s: float = 0.0, watermark_key_id: str | None = None) -> None:
        self.reply = reply
        self.delay_s = delay_s
        self.calls = 0
        self.info = BackendInfo(kind="stub", model_ids=model_ids, watermarked=watermark_key_id is not None,
                                watermark={"key_id": watermark_key_id} if watermark_key_id else {})
        self._key_id = watermark_key_id

    async def generate(self, request: GenerationRequest) -> GenerationOutput:
        self.calls += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if isinstance(request.prompt, str):
            last, prompt_words = request.prompt, len(request.prompt.split())
        else:
            last = request.prompt[-1]["content"] if request.prompt else ""
            prompt_words = sum(len(m["content"].split()) for m in request.prompt)
        words = (self.reply if self.reply is not None else f"echo: {last}").split() or ["(empty)"]
        choices = tuple(self._choice(words, request) for _ in range(request.n))
        return GenerationOutput(choices=choices, prompt_tokens=max(1, prompt_words),
                                prompt_text=request.prompt if isinstance(request.prompt, str) else "",
                                watermark_key_id=self._key_id, system_fingerprint="fp_stub")

    @staticmethod
    def _choice(words: list[str], request: GenerationRequest) -> GeneratedChoice:
        kept = words[:request.max_tokens]
        pieces = tuple(w if i == 0 else f" {w}" for i, w in enumerate(kept))
        text = "".join(pieces)
        finish = "length" if len(kept) < len(words) else "stop"
        for s in request.stop:
            if s in text:
                text, finish = text[:text.index(s)], "stop"
                pieces = (text,)
                kept = kept[:1]
        logprobs = None
        if request.want_logprobs:
            logprobs = tuple(
                TokenLogprob(1000 + i, p, -0.5,
                             tuple(TokenLogprob(1000 + i + a, p if a == 0 else f"{p}~{a}", -0.5 - a)
                                   for a in range(request.logprobs)))
                for i, p in enumerate(pieces))
        return GeneratedChoice(text=text, finish_reason=finish, completion_tokens=len(kept),
                               logprobs=logprobs, pieces=pieces)


def _call(endpoint: str, req: Any) -> Call:
    max_tokens = req.requested_max_tokens() or 16
    return Call(endpoint=endpoint, request=req, request_id=uuid.uuid4().hex, created=int(time.time()),
                model=req.model, max_tokens=max_tokens)


def stub_upstream_app(backend: StubBackend | None = None, *, max_tokens_cap: int = 512) -> FastAPI:
    """A bare OpenAI-compatible server answering from ``backend`` (default: a fresh StubBackend).

    Like a real server it refuses ``max_tokens`` above its own cap with an OpenAI-style 400.
    """
    stub = backend or StubBackend()
    app = FastAPI(title="distillscope stub upstream")
    app.state.received = []

    async def serve(endpoint: str, req: Any, request: Request):
        app.state.received.append({"endpoint": endpoint, "body": req.model_dump(exclude_unset=True),
                                   "authorization": request.headers.get("authorization")})
        call = _call(endpoint, req)
        if call.max_tokens > max_tokens_cap:
            return JSONResponse({"error": {"message": f"max_tokens must be at most {max_tokens_cap}",
                                           "type": "invalid_request_error", "param": "max_tokens",
                                           "code": "max_tokens_too_large"}}, status_code=400)
        if not req.stream:
            return JSONResponse((await stub.complete(call)).body)

        async def events():
            async for item in stub.stream(call):
                if not isinstance(item, Reply):
                    yield sse(item)
            yield sse("[DONE]")

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "stub"}
                                           for m in stub.info.model_ids]}

    @app.post("/v1/chat/completions")
    async def chat(req: ChatCompletionRequest, request: Request):
        return await serve("chat", req, request)

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest, request: Request):
        return await serve("completions", req, request)

    return app
