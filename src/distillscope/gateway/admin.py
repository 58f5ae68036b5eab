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
from datetime import datetime
from enum import Enum
from typing import Any, Callable, Optional

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from distillscope.errors import AuthError, ConfigError, DistillscopeError
from distillscope.gateway.accounts import AccountInfo, AccountStore, KeyInfo, KeyState, Limits
from distillscope.gateway.errors_http import error_body
from distillscope.gateway.requestlog import RequestLog

log = logging.getLogger(__name__)

ADMIN_ACTOR = "admin-api"
_STATUS_BY_CODE = {"admin_disabled": 403, "account_exists": 409, "account_revoked": 409, "key_revoked": 409}


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

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except DistillscopeError as exc:
                status = _status_for(exc)
                headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
                return JSONResponse(error_body(str(exc), status=status, code=exc.code), status_code=status,
                                    headers=headers)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
                return JSONResponse(error_body(f"invalid request: {param or 'body'}: {first.get('msg', 'invalid')}",
                                               status=400, code="invalid_request", param=param), status_code=400)
        return route


class LimitsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rpm: Optional[int] = Field(default=None, ge=1, description="Requests per minute (null: unlimited).")
    tpm: Optional[int] = Field(default=None, ge=1, description="Tokens per minute (null: unlimited).")
    max_concurrent: Optional[int] = Field(default=None, ge=1, description="Concurrent requests (null: unlimited).")
    throttle_factor: Optional[float] = Field(default=None, gt=0, le=1, description="Multiplier when throttled.")

    def merged(self, base: Limits) -> Limits:
        """``base`` with the fields this body sets (an explicit null lifts that limit)."""
        return dataclasses.replace(base, **{k: getattr(self, k) for k in self.model_fields_set
                                           if not (k == "throttle_factor" and self.throttle_factor is None)})


class CreateAccountBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    limits: Optional[LimitsBody] = None
    create_key: bool = Field(default=False, description="Also create a first API key.")


class StateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: KeyState
    reason: str = Field(min_length=1)
    evidence: Optional[dict[str, Any]] = None


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


def _admin_guard(admin_token: SecretStr | None) -> Callable[[Request], None]:
    expected = admin_token.get_secret_value().encode() if admin_token is not None else None

    def require_admin(request: Request) -> None:
        if not expected:
            raise AuthError("the admin API is disabled because no admin token is configured",
                            hint="set DISTILLSCOPE_ADMIN_TOKEN (or admin_token in the config file) and restart",
                            code="admin_disabled")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("the admin API needs 'Authorization: Bearer <admin token>'", code="missing_admin_token")
        if not hmac.compare_digest(token.strip().encode(), expected):
            raise AuthError("the admin token is invalid", hint="check DISTILLSCOPE_ADMIN_TOKEN",
                            code="invalid_admin_token")
    return require_admin


def admin_router(store: AccountStore, request_log: RequestLog, admin_token: SecretStr | None) -> APIRouter:
    """The ``/admin/v1`` router over ``store`` and ``request_log``."""
    router = APIRouter(prefix="/admin/v1", tags=["admin"], route_class=_AdminRoute,
                       dependencies=[Depends(_admin_guard(admin_token))])

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
    def create_key(account: str) -> dict[str, Any]:
        plaintext, key = store.create_key(account, actor=ADMIN_ACTOR)
        return {"api_key": plaintext, "key": _key_out(key)}

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
    def usage(since: Optional[datetime] = None, until: Optional[datetime] = None) -> dict[str, Any]:
        for name, bound in (("since", since), ("until", until)):
            if bound is not None and bound.tzinfo is None:
                raise ConfigError(f"{name}={bound.isoformat()} has no timezone", hint="append Z or +00:00",
                                  code="invalid_time")
        names = {a.account_id: a.name for a in store.list_accounts()}
        rows = [{**_plain(u), "account_name": names.get(u.account_id)}
                for u in request_log.usage(since=since, until=until)]
        return {"object": "list", "data": rows}

    return router
