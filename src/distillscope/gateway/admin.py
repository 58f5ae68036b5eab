"""The admin HTTP API: accounts, keys, limits, enforcement states, audit and usage.

Mounted by the app factory under ``/admin/v1``. Every route needs ``Authorization: Bearer
<admin token>`` (compared in constant time); with no admin token configured the API answers 403.
Errors are OpenAI-style ``{"error": {"message", "type", "param", "code"}}`` bodies. The only
secret a response ever carries is a newly created API key, once, in ``api_key``.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
import math
import re
import threading
import time
from collections import deque
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Callable, Optional

from fastapi import APIRouter, Depends, Path, Query, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from annotated_types import Gt, Le
from pydantic import BaseModel, ConfigDict, Field, SecretStr, Strict, StrictBool, StrictStr

from distillscope.errors import AuthError, ConfigError, DistillscopeError
from distillscope.gateway.accounts import (ACCOUNT_NAME_PATTERN, MAX_BUDGET, MAX_LIMIT, REASON_PATTERN, AccountInfo,
                                           AccountStore, KeyInfo, KeyState, Limits)
from distillscope.gateway.budgets import spend_report
from distillscope.gateway.errors_http import _param, error_body
from distillscope.gateway.requestlog import RequestLog
from distillscope.gateway.schemas import json_int
from distillscope.gateway.textcheck import find_surrogate_field, surrogate_message

log = logging.getLogger(__name__)

ADMIN_ACTOR = "admin-api"
_STATUS_BY_CODE = {"admin_disabled": 403, "admin_auth_blocked": 403, "account_exists": 409, "account_revoked": 409,
                   "key_revoked": 409}
# Failed admin-token attempts tolerated per client address and window before it is blocked (403).
ADMIN_MAX_FAILURES = 10
ADMIN_FAILURE_WINDOW_S = 60.0

admin_bearer = HTTPBearer(auto_error=False, scheme_name="AdminToken",
                          description="The gateway's admin token (DISTILLSCOPE_ADMIN_TOKEN).")


def _status_for(exc: DistillscopeError) -> int:
    code = exc.code or ""
    if code in _STATUS_BY_CODE:
        return _STATUS_BY_CODE[code]
    if isinstance(exc, AuthError):
        return 401
    if code.endswith("_not_found"):
        return 404
    if isinstance(exc, ConfigError):
        return 400
    return 500 if code.endswith("_unavailable") else 400


class _AdminRoute(APIRoute):
    """Translates library errors and invalid bodies into OpenAI-style error responses."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()
        known_query = {p.alias for p in self.dependant.query_params}

        async def route(request: Request) -> Response:
            try:
                unknown = sorted(set(request.query_params) - known_query)
                if unknown:  # a misspelt filter must not silently widen a query
                    return JSONResponse(error_body(
                        f"unknown query parameter {unknown[0]!r}; this route takes "
                        f"{', '.join(sorted(known_query)) or 'none'}", status=400, code="invalid_request",
                        param=unknown[0]), status_code=400)
                if request.method in ("POST", "PUT", "PATCH"):
                    bad = find_surrogate_field(await request.body())
                    if bad is not None:
                        return JSONResponse(error_body(surrogate_message(bad), status=400, code="invalid_request",
                                                       param=bad or None), status_code=400)
                return await handler(request)
            except DistillscopeError as exc:
                status = _status_for(exc)
                headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
                if isinstance(exc, AdminBlocked):
                    headers = {"retry-after": str(max(1, math.ceil(exc.retry_after)))}
                return JSONResponse(error_body(str(exc), status=status, code=exc.code), status_code=status,
                                    headers=headers)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                param = _param(tuple(first.get("loc", ())))
                return JSONResponse(error_body(f"invalid request: {param or 'body'}: {first.get('msg', 'invalid')}",
                                               status=400, code="invalid_request", param=param), status_code=400)
        return route


class LimitsBody(BaseModel):
    """Limits as JSON integers (``true`` or ``1.5`` are refused), each in [1, 2^31 - 1]."""

    model_config = ConfigDict(extra="forbid")
    rpm: Optional[json_int(ge=1, le=MAX_LIMIT)] = Field(default=None,
                                                        description="Requests per minute (null: unlimited).")
    tpm: Optional[json_int(ge=1, le=MAX_LIMIT)] = Field(default=None,
                                                        description="Tokens per minute (null: unlimited).")
    max_concurrent: Optional[json_int(ge=1, le=MAX_LIMIT)] = Field(
        default=None, description="Concurrent requests (null: unlimited).")
    throttle_factor: Optional[Annotated[float, Strict(), Gt(0), Le(1)]] = Field(
        default=None, description="Multiplier when throttled, in (0, 1].")

    def merged(self, base: Limits) -> Limits:
        """``base`` with the fields this body sets (an explicit null lifts that limit)."""
        return dataclasses.replace(base, **{k: getattr(self, k) for k in self.model_fields_set
                                           if not (k == "throttle_factor" and self.throttle_factor is None)})


class CreateAccountBody(BaseModel):
    model_config = ConfigDict(extra="forbid", regex_engine="python-re")
    name: StrictStr = Field(pattern=ACCOUNT_NAME_PATTERN,
                            description="1-64 letters, digits, '_', '.', '@' or '-', not starting with 'acct_'.")
    limits: Optional[LimitsBody] = None
    create_key: StrictBool = Field(default=False, description="Also create a first API key.")


class CreateKeyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    expires_at: Optional[StrictStr] = Field(default=None, json_schema_extra={"format": "date-time"},
                                            description="RFC 3339 time after which the key stops working.")


class BudgetBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    monthly_tokens: Optional[json_int(ge=1, le=MAX_BUDGET)] = Field(
        description="Tokens (prompt + completion) per UTC month; null lifts the budget.")


class StateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: KeyState
    reason: StrictStr = Field(min_length=1, pattern=REASON_PATTERN,
                              description="Why (recorded in the audit log).")
    evidence: Optional[dict[str, Any]] = None


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
MODEL_PATH = Path(max_length=256, description="Model id as clients send it (may contain '/').")
TIME_QUERY = Query(default=None, description="RFC 3339 date-time with a time zone, e.g. 2026-01-31T00:00:00Z.",
                   json_schema_extra={"format": "date-time"})


def parse_rfc3339(text: str | None, name: str) -> datetime | None:
    """An RFC 3339 date-time with its zone (``2026-01-31T12:00:00Z``), or ConfigError naming ``name``."""
    if text is None:
        return None
    value = None
    if _RFC3339.match(text):
        try:
            value = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
        except ValueError:
            value = None
    if value is None:
        raise ConfigError(f"{name}={text!r} is not an RFC 3339 date-time with a time zone",
                          hint="e.g. 2026-01-31T00:00:00Z", code="invalid_time")
    return value


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _key_out(info: KeyInfo) -> dict[str, Any]:
    return {**_plain(info), "display": info.display}


def _account_out(info: AccountInfo) -> dict[str, Any]:
    out = _plain(info)
    out["keys"] = [_key_out(k) for k in info.keys]
    return out


class AdminBlocked(AuthError):
    """An address blocked after too many wrong admin tokens (403 ``admin_auth_blocked``, ``retry-after``)."""

    def __init__(self, message: str, *, retry_after: float, hint: str | None = None) -> None:
        super().__init__(message, hint=hint, code="admin_auth_blocked")
        self.retry_after = retry_after


class AdminGuard:
    """Checks the admin token; throttles and logs guessing.

    Every refused token is logged with the client address. An address with
    ``max_failures`` refusals inside ``window_s`` seconds gets 403 (``admin_auth_blocked``, with
    ``retry-after``) for every admin request, right token or not (so the answer tells nothing about
    the token), until its oldest failure leaves the window. ``max_failures=0`` turns this off.
    Counts are per gateway process (with N workers a guesser gets at most N × ``max_failures``).
    """

    def __init__(self, admin_token: SecretStr | None, *, max_failures: int = ADMIN_MAX_FAILURES,
                 window_s: float = ADMIN_FAILURE_WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.expected = admin_token.get_secret_value().encode() if admin_token is not None else None
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        failures = self._failures.get(client)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        if not failures:
            del self._failures[client]
        return failures

    def _refuse(self, client: str, exc: AuthError) -> AuthError:
        now = self._clock()
        with self._lock:
            failures = self._recent(client, now)
            failures.append(now)
            self._failures[client] = failures
            if len(self._failures) > 10_000:  # bound the memory a spray of addresses can take
                for stale in [c for c, f in self._failures.items() if not f or f[-1] <= now - self.window_s]:
                    del self._failures[stale]
            n = len(failures)
        log.warning("admin API: %s from %s (%d failed attempt(s) in the last %.0fs)", exc.code, client, n,
                    self.window_s)
        return exc

    def _throttled(self, client: str) -> AdminBlocked | None:
        if self.max_failures <= 0:
            return None
        now = self._clock()
        with self._lock:
            failures = self._recent(client, now)
            if len(failures) < self.max_failures:
                return None
            wait = failures[0] + self.window_s - now
        log.warning("admin API: refusing %s, %d failed admin-token attempts in %.0fs", client, len(failures),
                    self.window_s)
        return AdminBlocked(f"admin access from {client} is blocked after too many invalid admin tokens",
                            retry_after=wait, hint=f"retry after {max(1, math.ceil(wait))}s with the right token")

    def __call__(self, request: Request, _credentials: Any = None) -> None:
        if not self.expected:
            raise AuthError("the admin API is disabled because no admin token is configured",
                            hint="set DISTILLSCOPE_ADMIN_TOKEN (or admin_token in the config file) and restart",
                            code="admin_disabled")
        client = request.client.host if request.client else "unknown"
        throttled = self._throttled(client)
        if throttled is not None:
            raise throttled
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise self._refuse(client, AuthError("the admin API needs 'Authorization: Bearer <admin token>'",
                                                 code="missing_admin_token"))
        if not hmac.compare_digest(token.strip().encode(), self.expected):
            raise self._refuse(client, AuthError("the admin token is invalid", hint="check DISTILLSCOPE_ADMIN_TOKEN",
                                                 code="invalid_admin_token"))


def _admin_dependency(guard: AdminGuard) -> Callable[..., None]:
    """The guard as a FastAPI dependency that declares the ``AdminToken`` bearer scheme in OpenAPI."""
    def require_admin(request: Request,
                      credentials: Optional[HTTPAuthorizationCredentials] = Security(admin_bearer)) -> None:
        guard(request, credentials)
    return require_admin


def admin_router(store: AccountStore, request_log: RequestLog, admin_token: SecretStr | None, *,
                 max_failures: int = ADMIN_MAX_FAILURES) -> APIRouter:
    """The ``/admin/v1`` router over ``store`` and ``request_log`` (``max_failures``: see :class:`AdminGuard`)."""
    guard = AdminGuard(admin_token, max_failures=max_failures)
    router = APIRouter(prefix="/admin/v1", tags=["admin"], route_class=_AdminRoute,
                       dependencies=[Depends(_admin_dependency(guard))])

    @router.post("/accounts", status_code=201)
    def create_account(body: CreateAccountBody) -> dict[str, Any]:
        limits = body.limits.merged(Limits()) if body.limits else Limits()
        info = store.create_account(body.name, limits=limits, actor=ADMIN_ACTOR)
        out: dict[str, Any] = {"account": _account_out(info)}
        if body.create_key:
            plaintext, key = store.create_key(info.account_id, actor=ADMIN_ACTOR)
            out.update(api_key=plaintext, key=_key_out(key))
            out["account"] = _account_out(store.get_account(info.account_id))
        return out

    @router.get("/accounts")
    def list_accounts() -> dict[str, Any]:
        return {"object": "list", "data": [_account_out(a) for a in store.list_accounts()]}

    @router.get("/accounts/{account}")
    def get_account(account: str) -> dict[str, Any]:
        return _account_out(store.get_account(account))

    @router.post("/accounts/{account}/keys", status_code=201)
    def create_key(account: str, body: Optional[CreateKeyBody] = None) -> dict[str, Any]:
        expires = parse_rfc3339(body.expires_at, "expires_at") if body is not None else None
        plaintext, key = store.create_key(account, actor=ADMIN_ACTOR, expires_at=expires)
        return {"api_key": plaintext, "key": _key_out(key)}

    @router.put("/accounts/{account}/model-limits/{model:path}")
    def set_model_limits(account: str, body: LimitsBody, model: str = MODEL_PATH) -> dict[str, Any]:
        limits = body.merged(Limits(rpm=None, tpm=None, max_concurrent=None))
        store.set_model_limits(account, model, limits, actor=ADMIN_ACTOR)
        return _account_out(store.get_account(account))

    @router.delete("/accounts/{account}/model-limits/{model:path}")
    def delete_model_limits(account: str, model: str = MODEL_PATH) -> dict[str, Any]:
        store.set_model_limits(account, model, None, actor=ADMIN_ACTOR)
        return _account_out(store.get_account(account))

    @router.put("/accounts/{account}/budget")
    def set_budget(account: str, body: BudgetBody) -> dict[str, Any]:
        store.set_budget(account, body.monthly_tokens, actor=ADMIN_ACTOR)
        return _account_out(store.get_account(account))

    @router.get("/spend")
    def spend(period: Optional[str] = Query(default=None, pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$",
                                            description="UTC month, YYYY-MM (default: this month).")
              ) -> dict[str, Any]:
        return {"object": "list", "data": _plain(spend_report(store, request_log, period))}

    @router.post("/accounts/{account}/state")
    def set_account_state(account: str, body: StateBody) -> dict[str, Any]:
        store.set_account_state(account, body.state, reason=body.reason, actor=ADMIN_ACTOR, evidence=body.evidence)
        return _account_out(store.get_account(account))

    @router.put("/accounts/{account}/limits")
    def set_limits(account: str, body: LimitsBody) -> dict[str, Any]:
        current = store.get_account(account)
        store.set_limits(current.account_id, body.merged(current.limits), actor=ADMIN_ACTOR)
        return _account_out(store.get_account(current.account_id))

    @router.post("/keys/{key_id}/state")
    def set_key_state(key_id: str, body: StateBody) -> dict[str, Any]:
        store.set_key_state(key_id, body.state, reason=body.reason, actor=ADMIN_ACTOR, evidence=body.evidence)
        return _key_out(store.get_key(key_id))

    @router.post("/keys/{key_id}/rotate", status_code=201)
    def rotate_key(key_id: str) -> dict[str, Any]:
        plaintext, key = store.rotate_key(key_id, actor=ADMIN_ACTOR)
        return {"api_key": plaintext, "key": _key_out(key), "revoked_key_id": key_id}

    @router.get("/audit")
    def audit(target: Optional[str] = None, limit: int = Query(default=100, ge=1, le=10_000)) -> dict[str, Any]:
        return {"object": "list", "data": _plain(store.audit_log(target=target, limit=limit))}

    @router.get("/usage")
    def usage(since: Optional[str] = TIME_QUERY, until: Optional[str] = TIME_QUERY) -> dict[str, Any]:
        start, end = parse_rfc3339(since, "since"), parse_rfc3339(until, "until")
        names = {a.account_id: a.name for a in store.list_accounts()}
        rows = [{**_plain(u), "account_name": names.get(u.account_id)}
                for u in request_log.usage(since=start, until=end)]
        return {"object": "list", "data": rows}

    return router
