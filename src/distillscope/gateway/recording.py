"""One request-log row per API request, written before the response is acknowledged.

:class:`RequestContext` collects what a request's row needs as the request goes through
authentication, validation, limits and the backend; :func:`record` writes the row (group
committed with the rows of concurrent requests, see :mod:`.logwriter`; committed before it
returns), updates the metrics, and hands the row to every request guard, applying the actions
they return. A guard that raises is logged and skipped: guards never
break serving.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from distillscope.errors import GatewayError
from distillscope.gateway.enforcement import apply_actions
from distillscope.gateway.requestlog import RequestRecord
from distillscope.gateway.state import GatewayState

logger = logging.getLogger(__name__)

API_PREFIX = "/v1/"
ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/models")


@dataclass
class RequestContext:
    """Per-request facts gathered for the log row (kept in ``request.state.ctx``)."""

    request_id: str
    ts: datetime
    t0: float
    endpoint: str
    client_ip: str | None
    user_agent: str | None
    principal: Any = None
    auth_error: str | None = None
    key_id_hint: str | None = None   # ids of a genuine key refused for its state (revoked, suspended)
    account_id_hint: str | None = None
    body: Any = None                 # the validated request model
    raw_body: Any = None             # the parsed JSON of an invalid request
    logged: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def new_request_id() -> str:
    return secrets.token_hex(12)


def context(request: Request) -> RequestContext:
    """The request's context, created on first use."""
    ctx = getattr(request.state, "ctx", None)
    if ctx is None:
        client = request.client
        ctx = RequestContext(
            request_id=getattr(request.state, "request_id", None) or new_request_id(),
            ts=getattr(request.state, "arrived", None) or datetime.now(timezone.utc),
            t0=getattr(request.state, "t0", None) or time.perf_counter(),
            endpoint=request.url.path, client_ip=client.host if client else None,
            user_agent=request.headers.get("user-agent"))
        request.state.ctx = ctx
    return ctx


def is_api_request(request: Request) -> bool:
    return request.url.path.startswith(API_PREFIX)


def _from_raw(raw: Any) -> dict[str, Any]:
    """Best-effort fields of an invalid body (a dict that failed validation)."""
    if not isinstance(raw, dict):
        return {}
    prompt = raw.get("messages", raw.get("prompt"))
    params = {k: v for k, v in raw.items() if k not in ("messages", "prompt")}
    return {"model": raw.get("model") if isinstance(raw.get("model"), str) else None,
            "prompt": prompt if isinstance(prompt, str) or prompt is None else json.dumps(prompt, default=str),
            "params": params, "stream": raw.get("stream") is True}


_INT64 = 2**63 - 1


def _num(value: Any, kind: type) -> Any:
    """``value`` as ``kind`` for an analytics column; None when absent, not a number or out of range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        out = kind(value)
    except (OverflowError, ValueError):
        return None
    if kind is int and not -_INT64 <= out <= _INT64:
        return None
    if kind is float and not math.isfinite(out):
        return None
    return out


def build_record(ctx: RequestContext, status: int, *, error: str | None = None, reply: Any = None) -> RequestRecord:
    principal = ctx.principal
    if ctx.body is not None:
        body = ctx.body
        fields_ = {"model": body.model, "prompt": body.prompt_for_log(), "params": body.sent_params(),
                   "stream": body.stream}
        logprobs = body.top_k_logprobs() if body.logprobs else 0
        max_tokens = _num(body.requested_max_tokens(), int)
    else:
        fields_ = _from_raw(ctx.raw_body)
        params = fields_.get("params") or {}
        logprobs = _num(params.get("top_logprobs", params.get("logprobs")), int) or 0
        max_tokens = _num(params.get("max_tokens"), int)
    params = fields_.get("params") or {}
    return RequestRecord(
        request_id=ctx.request_id, ts=ctx.ts, endpoint=ctx.endpoint, status=status,
        account_id=principal.account_id if principal else ctx.account_id_hint,
        key_id=principal.key_id if principal else ctx.key_id_hint,
        client_ip=ctx.client_ip, user_agent=ctx.user_agent, model=fields_.get("model"), params=params,
        temperature=_num(params.get("temperature"), float), max_tokens=max_tokens,
        logprobs=max(0, min(int(logprobs), 10_000)), logit_bias=bool(params.get("logit_bias")),
        stream=bool(fields_.get("stream")), prompt=fields_.get("prompt"),
        completion=reply.completion_text if reply is not None else None,
        prompt_tokens=reply.prompt_tokens if reply is not None else 0,
        completion_tokens=reply.completion_tokens if reply is not None else 0,
        latency_ms=(time.perf_counter() - ctx.t0) * 1000.0, error=error,
        watermark_key_id=reply.watermark_key_id if reply is not None else None,
        end_user=params.get("user") if isinstance(params.get("user"), str) else None)


def _observe_guards(state: GatewayState, record: RequestRecord) -> None:
    with state.guard_lock:  # guards need not be thread-safe
        for guard in state.guards:
            try:
                actions = guard.observe(record)
                if actions:
                    apply_actions(state.store, actions)
            except Exception:  # a guard must never break serving
                state.metrics.guard_failures.inc()
                logger.exception("request guard %s failed on request %s", type(guard).__name__,
                                 record.request_id)


async def _write_and_guard(state: GatewayState, record: RequestRecord) -> None:
    try:
        await state.log_writer.write(record)  # group commit: committed when this returns
    except SQLAlchemyError as exc:
        logger.error("request %s: the request log is unavailable (%s)", record.request_id, type(exc).__name__)
        raise GatewayError("the request could not be logged, so it was not served",
                           hint="retry later", code="request_log_unavailable") from None
    if state.guards:
        await run_in_threadpool(_observe_guards, state, record)


async def record(state: GatewayState, ctx: RequestContext, status: int, *, error: str | None = None,
                 reply: Any = None) -> RequestRecord | None:
    """Write the request's row (once) and update metrics; then run the guards."""
    if ctx.logged:
        return None
    ctx.logged = True
    rec = build_record(ctx, status, error=error, reply=reply)
    await _write_and_guard(state, rec)
    label = ctx.endpoint if ctx.endpoint in ENDPOINTS else "other"
    state.metrics.observe(label, status, rec.latency_ms / 1000.0, prompt_tokens=rec.prompt_tokens,
                          completion_tokens=rec.completion_tokens, reason=error if status >= 400 else None)
    return rec
