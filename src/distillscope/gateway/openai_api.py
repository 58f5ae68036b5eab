"""The OpenAI-compatible API: ``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``.

Every request is authenticated (a dependency, before the body is looked at), checked against
the gateway's caps, admitted by the per-key rate limiter, served by the backend, and logged:
the request-log row is committed before the response is returned, and for streams before the
final ``data: [DONE]``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import time
from typing import Any, AsyncIterator

from fastapi import APIRouter, Depends, Request, Security
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from distillscope.errors import AuthError, DistillscopeError, GatewayError, RateLimitError
from distillscope.gateway import recording
from distillscope.gateway.accounts import parse_api_key
from distillscope.gateway.errors_http import InvalidRequestError
from distillscope.gateway.generation import Call, Reply
from distillscope.gateway.responses import sse
from distillscope.gateway.schemas import ChatCompletionRequest, CompletionRequest
from distillscope.gateway.state import GatewayState, get_state
from distillscope.gateway.textcheck import find_surrogate_field, surrogate_message

logger = logging.getLogger(__name__)

bearer = HTTPBearer(auto_error=False, description="An API key issued by `distillscope accounts`.")


async def authenticate_request(request: Request) -> Any:
    """Authenticate from the ``Authorization: Bearer`` header; the principal lands in the context."""
    ctx = recording.context(request)
    header = request.headers.get("authorization") or ""
    scheme, _, token = header.partition(" ")
    api_key = token.strip() if scheme.lower() == "bearer" else ""
    try:
        ctx.principal = await run_in_threadpool(get_state(request).store.authenticate, api_key or None)
    except AuthError as exc:
        ctx.auth_error = exc.code
        if exc.code and exc.code.endswith(("_revoked", "_suspended", "_expired")):
            await _attribute_refusal(request, ctx, api_key)
        if ctx.raw_body is None and request.method == "POST":
            ctx.raw_body = await _parsed_body(request)
        raise
    return ctx.principal


async def _attribute_refusal(request: Request, ctx: recording.RequestContext, api_key: str) -> None:
    """A genuine key refused for its state (revoked, suspended): log its key and account ids."""
    parsed = parse_api_key(api_key)
    if parsed is None:
        return
    ctx.key_id_hint = parsed[0]
    try:
        info = await run_in_threadpool(get_state(request).store.get_key, parsed[0])
        ctx.account_id_hint = info.account_id
    except DistillscopeError:
        pass


async def _parsed_body(request: Request) -> Any:
    """The JSON body (already read and cached by FastAPI), for the log row of a refused request."""
    try:
        return json.loads(await request.body())
    except (ValueError, RuntimeError):
        return None


async def principal(request: Request,
                    _credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> Any:
    return await authenticate_request(request)


router = APIRouter(prefix="/v1", tags=["openai"], dependencies=[Depends(principal)])


def _check(state: GatewayState, body: Any, endpoint: str) -> int:
    """Caps and model; returns the resolved ``max_tokens``."""
    cfg, backend = state.config, state.backend
    if backend is None or not state.ready:
        raise GatewayError("the model is still loading", hint="retry in a few seconds", code="backend_not_ready")
    if backend.info.model_ids and body.model not in backend.info.model_ids:
        raise GatewayError(f"the model {body.model!r} does not exist",
                           hint=f"use one of: {', '.join(backend.info.model_ids)} (see /v1/models)",
                           code="model_not_found")
    requested = body.requested_max_tokens()
    for name in ("max_tokens", "max_completion_tokens"):
        value = getattr(body, name, None)
        if value is not None and value > cfg.max_tokens_cap:
            raise InvalidRequestError(f"{name}={value} is more than this gateway allows ({cfg.max_tokens_cap})",
                                      hint=f"ask for at most {cfg.max_tokens_cap} tokens", param=name,
                                      code="max_tokens_too_large")
    n_prompts = len(body.prompts()) if endpoint == "completions" else 1
    if body.n * n_prompts > cfg.max_choices:
        raise GatewayError(f"n={body.n} for {n_prompts} prompt(s) asks for more than {cfg.max_choices} choices",
                           hint="lower n or send fewer prompts per request", code="too_many_choices")
    if body.prompt_chars() > cfg.max_prompt_chars:
        raise GatewayError(f"the prompt has {body.prompt_chars()} characters, more than {cfg.max_prompt_chars}",
                           hint="shorten the prompt", code="prompt_too_long")
    if backend.info.kind != "proxy":
        _check_local_only(body)
    return requested if requested is not None else min(cfg.default_max_tokens, cfg.max_tokens_cap)


def acquire_leases(limiter: Any, principal: Any, model: str, est_tokens: int) -> Any:
    """The key's lease, and with a per-model limit for ``model`` that one too (its own bucket).

    A refusal by the model's limit gives the key's lease back (the key's request count stays spent).
    """
    lease = limiter.acquire(principal, est_tokens=est_tokens)
    limits = principal.model_limits.get(model) if principal.model_limits else None
    if limits is None:
        return lease
    bucket = f"{principal.key_id}.{hashlib.sha1(model.encode('utf-8', 'replace')).hexdigest()[:19]}"
    try:
        model_lease = limiter.acquire(dataclasses.replace(principal, key_id=bucket, limits=limits),
                                      est_tokens=est_tokens)
    except RateLimitError as exc:
        lease.release(0)
        exc.message = exc.message.replace(f"API key {bucket}", f"model {model!r} on API key {principal.key_id}")
        exc.args = (f"{exc.message} ({exc.hint})" if exc.hint else exc.message,)
        raise
    return CombinedLease(lease, model_lease)


class CombinedLease:
    """Two leases released together; the headers of the model's limit win where both set one."""

    def __init__(self, first: Any, second: Any) -> None:
        self.first, self.second = first, second
        self.headers = {**first.headers, **second.headers}

    def release(self, actual_tokens: int) -> None:
        self.first.release(actual_tokens)
        self.second.release(actual_tokens)


def _check_budget(state: GatewayState, principal: Any) -> None:
    """Refuse (429 ``insufficient_quota``, like OpenAI) once the account spent its month's tokens."""
    used = state.request_log.month_usage(principal.account_id)
    spent = used.prompt_tokens + used.completion_tokens
    if spent >= principal.monthly_token_budget:
        raise RateLimitError(f"account {principal.account_id} has used its monthly budget of "
                             f"{principal.monthly_token_budget} tokens ({spent} used this month)",
                             hint="ask the API provider to raise the budget, or wait for next month",
                             code="insufficient_quota", retry_after=3600.0)


def _check_local_only(body: Any) -> None:
    for i, message in enumerate(getattr(body, "messages", None) or ()):
        if message.role == "tool":  # OpenAI accepts one only as the answer to an assistant's tool call
            raise InvalidRequestError(
                f"messages.{i} has role 'tool', but the local teacher does not call tools, so no tool call "
                "can be answered", param=f"messages.{i}.role",
                hint="send the tool's result as a user message, or use system, developer, user and assistant")
    unsupported = None
    if body.logit_bias:
        unsupported = "logit_bias"
    elif getattr(body, "suffix", None):
        unsupported = "suffix"
    elif (getattr(body, "best_of", None) or 1) > 1:
        unsupported = "best_of"
    if unsupported:
        raise InvalidRequestError(f"{unsupported} is not supported by the local teacher",
                                  hint=f"remove {unsupported} from the request", param=unsupported,
                                  code="unsupported_parameter")


async def _serve(request: Request, endpoint: str, body: Any) -> Any:
    state = get_state(request)
    ctx = recording.context(request)
    ctx.body = body
    bad_field = find_surrogate_field(await request.body())
    if bad_field is not None:
        raise InvalidRequestError(surrogate_message(bad_field), param=bad_field or None)
    max_tokens = _check(state, body, endpoint)
    if ctx.principal.monthly_token_budget is not None:
        await run_in_threadpool(_check_budget, state, ctx.principal)
    n_prompts = len(body.prompts()) if endpoint == "completions" else 1
    est_tokens = body.prompt_chars() // 4 + max_tokens * body.n * n_prompts
    lease = await run_in_threadpool(acquire_leases, state.limiter, ctx.principal, body.model, est_tokens)
    call = Call(endpoint=endpoint, request=body, request_id=ctx.request_id, created=int(time.time()),
                model=body.model, max_tokens=max_tokens)
    headers = {**lease.headers, "x-request-id": ctx.request_id}
    state.metrics.in_flight.inc()
    streaming = False  # a started stream decrements in_flight itself when it ends
    try:
        if body.stream:
            response = await _stream(state, ctx, call, lease, headers)
            streaming = isinstance(response, StreamingResponse)
            return response
        try:
            reply = await state.backend.complete(call)
            await _finish(state, ctx, reply)
        except BaseException:
            await run_in_threadpool(lease.release, ctx.extra.get("tokens", 0))
            raise
        # The slot and the token correction are given back once the body is sent, off the
        # request's path (the row is already committed).
        return JSONResponse(reply.body, status_code=reply.status, headers=headers,
                            background=BackgroundTask(run_in_threadpool, lease.release,
                                                      ctx.extra.get("tokens", 0)))
    finally:
        if not streaming:
            state.metrics.in_flight.dec()


async def _finish(state: GatewayState, ctx: recording.RequestContext, reply: Reply) -> None:
    error = None
    if reply.status >= 400 and reply.body:
        error = str((reply.body.get("error") or {}).get("code") or "upstream_error")
    await recording.record(state, ctx, reply.status, error=error, reply=reply)
    ctx.extra["tokens"] = reply.prompt_tokens + reply.completion_tokens


async def _stream(state: GatewayState, ctx: recording.RequestContext, call: Call, lease: Any,
                  headers: dict[str, str]) -> Any:
    events = state.backend.stream(call).__aiter__()
    try:
        first = await events.__anext__()
    except BaseException:
        await run_in_threadpool(lease.release, 0)
        raise
    if isinstance(first, Reply):  # the backend refused before streaming (e.g. an upstream 4xx)
        await _finish(state, ctx, first)
        await run_in_threadpool(lease.release, 0)
        return JSONResponse(first.body, status_code=first.status, headers=headers)
    return StreamingResponse(_sse_events(state, ctx, call, first, events, lease), media_type="text/event-stream",
                             headers={**headers, "cache-control": "no-cache"})


async def _sse_events(state: GatewayState, ctx: recording.RequestContext, call: Call, first: dict[str, Any],
                      events: AsyncIterator[Any], lease: Any) -> AsyncIterator[bytes]:
    """The SSE body. A client that leaves mid-stream closes the backend's stream (the local teacher
    stops generating its answer) and still gets a row: 499, with what was sent (``call.tally``)."""
    tokens = 0
    try:
        yield sse(first)
        async for item in events:
            if isinstance(item, Reply):
                await _close(events)
                await _finish(state, ctx, item)  # durable before [DONE]
                tokens = item.prompt_tokens + item.completion_tokens
                yield sse("[DONE]")
                return
            yield sse(item)
        raise GatewayError("the backend ended the stream without a summary", code="stream_incomplete")
    except (asyncio.CancelledError, GeneratorExit):
        await _close(events)
        if not ctx.logged:  # client went away: the row is still written (awaited at shutdown)
            sent = call.tally.reply() if call.tally.completion_tokens or call.tally.texts else None
            task = asyncio.get_running_loop().create_task(
                recording.record(state, ctx, 499, error="client_disconnected", reply=sent))
            state.pending.add(task)
            task.add_done_callback(state.pending.discard)
        raise
    except Exception as exc:
        await _close(events)
        code = getattr(exc, "code", None) or "internal_error"
        logger.error("request %s: stream failed (%s)", ctx.request_id, code, exc_info=not getattr(exc, "code", None))
        if not ctx.logged:
            try:
                await recording.record(state, ctx, 502 if code == "upstream_unavailable" else 500, error=code)
            except Exception:
                logger.error("request %s: the failed stream could not be logged", ctx.request_id)
        yield sse({"error": {"message": f"the stream failed ({code}); request id {ctx.request_id}",
                             "type": "api_error", "param": None, "code": code}})
    finally:
        state.metrics.in_flight.dec()
        await run_in_threadpool(lease.release, tokens)


async def _close(events: AsyncIterator[Any]) -> None:
    """Close the backend's stream so its clean-up runs now (it stops generation without awaiting)."""
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:
            logger.debug("closing a backend stream failed", exc_info=True)


@router.post("/chat/completions", summary="Create a chat completion (OpenAI-compatible).")
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
    return await _serve(request, "chat", body)


@router.post("/completions", summary="Create a text completion (OpenAI-compatible, legacy).")
async def completions(body: CompletionRequest, request: Request) -> Any:
    return await _serve(request, "completions", body)


def _card(state: GatewayState, model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": "distillscope",
            "distillscope": _meta(state)}


def _meta(state: GatewayState) -> dict[str, Any]:
    info = state.backend.info
    return {"backend": info.kind, "watermarked": info.watermarked, "watermark": info.watermark,
            "warning": info.warning}


async def _log_ok(request: Request) -> dict[str, str]:
    ctx = recording.context(request)
    await recording.record(get_state(request), ctx, 200)
    return {"x-request-id": ctx.request_id}


@router.get("/models", summary="List the served models, with watermark metadata.")
async def list_models(request: Request) -> Any:
    state = get_state(request)
    if state.backend is None or not state.ready:
        raise GatewayError("the model is still loading", hint="retry in a few seconds", code="backend_not_ready")
    body = {"object": "list", "data": [_card(state, m) for m in state.backend.info.model_ids],
            "distillscope": _meta(state)}
    return JSONResponse(body, headers=await _log_ok(request))


@router.get("/models/{model_id}", summary="Describe one served model.")
async def get_model(model_id: str, request: Request) -> Any:
    state = get_state(request)
    if state.backend is None or not state.ready:
        raise GatewayError("the model is still loading", hint="retry in a few seconds", code="backend_not_ready")
    if model_id not in state.backend.info.model_ids:
        raise GatewayError(f"the model {model_id!r} does not exist", hint="see /v1/models", code="model_not_found")
    return JSONResponse(_card(state, model_id), headers=await _log_ok(request))
