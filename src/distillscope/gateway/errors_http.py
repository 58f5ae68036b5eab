"""Every error leaves the gateway as an OpenAI-style body ``{"error": {message, type, param, code}}``.

=========================================  ======  =====================
cause                                      status  ``code``
=========================================  ======  =====================
no / unknown API key                       401     missing_api_key, invalid_api_key
suspended or revoked key or account        403     key_revoked, account_suspended, ...
unknown model or route                     404     model_not_found, not_found
malformed JSON, missing / wrong fields     400     invalid_request (param = field path)
max_tokens / n over the cap, logit_bias    400     max_tokens_too_large, too_many_choices, ...
prompt over the size cap (as OpenAI)       400     prompt_too_long
body over the size cap                     413     request_too_large
per-key limit                              429     rate_limit_exceeded (+ x-ratelimit-*, retry-after)
upstream down (proxy mode)                 502     upstream_unavailable
request log / limiter database down        503     request_log_unavailable, ...
anything else (a bug)                      500     internal_error (no details, no trace)
=========================================  ======  =====================

API requests (``/v1/...``) that fail get their request-log row here, attributed to the account
whenever the API key is valid (authentication is tried before reporting a malformed body).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from distillscope.errors import AuthError, ConfigError, DistillscopeError, GatewayError, RateLimitError
from distillscope.gateway import recording
from distillscope.gateway.state import get_state
from distillscope.gateway.textcheck import find_surrogate_field, surrogate_message

logger = logging.getLogger(__name__)


class InvalidRequestError(GatewayError):
    """A request the gateway refuses as malformed (400), naming the offending field in ``param``."""

    def __init__(self, message: str, *, param: str | None = None, hint: str | None = None,
                 code: str = "invalid_request") -> None:
        super().__init__(message, hint=hint, code=code)
        self.param = param

_STATUS_BY_CODE = {
    "missing_api_key": 401, "invalid_api_key": 401, "invalid_admin_token": 401, "missing_admin_token": 401,
    "admin_disabled": 403,
    "model_not_found": 404, "not_found": 404, "account_not_found": 404, "key_not_found": 404,
    "request_too_large": 413,
    "rate_limit_exceeded": 429,
    "upstream_unavailable": 502,
    "request_log_unavailable": 503, "rate_limiter_unavailable": 503, "database_unavailable": 503,
    "backend_not_ready": 503,
    "account_exists": 409,
}
_TYPE_BY_STATUS = {401: "authentication_error", 403: "permission_error", 404: "invalid_request_error",
                   409: "invalid_request_error", 413: "invalid_request_error", 429: "rate_limit_error",
                   502: "api_error", 503: "api_error", 500: "api_error"}


def error_body(message: str, *, status: int, code: str | None, param: str | None = None,
               type_: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_ or _TYPE_BY_STATUS.get(status, "invalid_request_error"),
                      "param": param, "code": code}}


def status_for(exc: DistillscopeError) -> int:
    code = exc.code or ""
    if code in _STATUS_BY_CODE:
        return _STATUS_BY_CODE[code]
    if isinstance(exc, RateLimitError):
        return 429
    if isinstance(exc, AuthError):
        return 403 if code.endswith(("_revoked", "_suspended", "_throttled")) else 401
    if isinstance(exc, (ConfigError, GatewayError)):
        return 400
    return 400


def _response(request: Request, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
              ) -> JSONResponse:
    hdrs = dict(headers or {})
    ctx = getattr(request.state, "ctx", None)
    if ctx is not None:
        hdrs.setdefault("x-request-id", ctx.request_id)
    return JSONResponse(body, status_code=status, headers=hdrs)


async def _try_authenticate(request: Request) -> AuthError | None:
    """Authenticate a request that failed before its auth dependency ran; None when the key is good."""
    from distillscope.gateway.openai_api import authenticate_request

    ctx = recording.context(request)
    if ctx.principal is not None or ctx.auth_error is not None:
        return None
    try:
        await authenticate_request(request)
    except AuthError as exc:
        return exc
    except DistillscopeError:  # the account store is down: report the original problem
        return None
    return None


async def reject(request: Request, status: int, code: str, message: str, *, param: str | None = None,
                 headers: dict[str, str] | None = None) -> JSONResponse:
    """The error response, after the request-log row of an API request is durable."""
    if recording.is_api_request(request):
        ctx = recording.context(request)
        try:
            await recording.record(get_state(request), ctx, status, error=code)
        except Exception as exc:  # the row cannot be written: still answer, never with a trace
            logger.error("request %s: rejection could not be logged (%s)", ctx.request_id, type(exc).__name__)
            status, code = 503, "request_log_unavailable"
            message, param, headers = "the request log is unavailable; retry later", None, None
    return _response(request, status, error_body(message, status=status, code=code, param=param), headers)


async def on_distillscope_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DistillscopeError)
    status = status_for(exc)
    headers = exc.headers if isinstance(exc, RateLimitError) else None
    return await reject(request, status, exc.code or "invalid_request", str(exc), headers=headers,
                        param=getattr(exc, "param", None))


# Pydantic puts the names of its validators and union members into error locations
# ("str", "list[TextPart]", "function-after[...]"); they are no field of the request.
_PYDANTIC_TAGS = frozenset({"str", "int", "float", "bool", "none", "list", "dict", "bytes", "literal"})


def _param(loc: tuple[Any, ...]) -> str | None:
    """The request field a validation error names (``messages.0.content``), without pydantic's tags."""
    parts = []
    for p in loc:
        if isinstance(p, int):
            parts.append(str(p))
        elif isinstance(p, str) and p != "body" and (p.isdigit() or (p.isidentifier() and p not in _PYDANTIC_TAGS)):
            parts.append(p)
    return ".".join(parts) or None


async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    auth_error = await _try_authenticate(request) if recording.is_api_request(request) else None
    if auth_error is not None:
        return await on_distillscope_error(request, auth_error)
    ctx = recording.context(request)
    if ctx.body is None and isinstance(getattr(exc, "body", None), dict):
        ctx.raw_body = exc.body
    bad = find_surrogate_field(await request.body())
    if bad is not None:  # pydantic says "unable to parse raw data" for some fields: name the cause
        return await reject(request, 400, "invalid_request", surrogate_message(bad), param=bad or None)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": "value_error"}
    param = _param(tuple(first.get("loc", ())))
    if first.get("type") == "json_invalid":
        message = "the request body is not valid JSON; send a JSON object"
        param = None
    else:
        where = f" (field {param})" if param else ""
        message = f"invalid request{where}: {first.get('msg', 'invalid value')}"
        if len(errors) > 1:
            message += f"; and {len(errors) - 1} more problem(s)"
    return await reject(request, 400, "invalid_request", message, param=param)


async def on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if recording.is_api_request(request):
        auth_error = await _try_authenticate(request)
        if auth_error is not None:
            return await on_distillscope_error(request, auth_error)
    code = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed",
            413: "request_too_large"}.get(exc.status_code, "http_error")
    message = {400: "the request body could not be decoded; send a UTF-8 encoded JSON object",
               404: f"no such endpoint: {request.method} {request.url.path}",
               405: f"method {request.method} is not allowed on {request.url.path}",
               413: f"{exc.detail}; send a smaller request"}.get(exc.status_code,
                                                                                          str(exc.detail))
    return await reject(request, exc.status_code, code, message, headers=getattr(exc, "headers", None))


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    ctx = recording.context(request)
    logger.error("request %s failed with an internal error", ctx.request_id, exc_info=exc)
    return await reject(request, 500, "internal_error",
                        f"the server had an internal error (request id {ctx.request_id}); retry later")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DistillscopeError, on_distillscope_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)
    app.add_exception_handler(Exception, on_unexpected)
