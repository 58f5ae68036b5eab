"""The app factory: ``create_app(settings, ...)`` mounts the routers and owns one lifespan.

The lifespan migrates the database, loads the backend (the watermarked local teacher by
default, the upstream in proxy mode) and starts it; the routers share a
:class:`~distillscope.gateway.state.GatewayState`. ``app_from_env`` is the factory uvicorn
imports when ``distillscope serve --workers N`` runs several worker processes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Sequence

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from distillscope import __version__
from distillscope.gateway import admin as admin_api
from distillscope.gateway import ops_api, openai_api
from distillscope.gateway.accounts import AccountStore
from distillscope.gateway.backends import LocalBackend, make_backend
from distillscope.gateway.db import make_engine, upgrade_database
from distillscope.gateway.errors_http import install_error_handlers
from distillscope.gateway.limits import make_rate_limiter
from distillscope.gateway.logwriter import GroupCommitWriter
from distillscope.gateway.metrics import GatewayMetrics
from distillscope.gateway.openapi import install_openapi
from distillscope.gateway.recording import new_request_id
from distillscope.gateway.requestlog import RequestLog
from distillscope.gateway.state import GatewayConfig, GatewayState
from distillscope.settings import Settings, load_settings

logger = logging.getLogger(__name__)


class RequestStampMiddleware:
    """Stamps every HTTP request with an id and its arrival time, and caps the body size.

    Pure ASGI (no per-request task). A body over ``max_body_bytes`` raises ``request_too_large``
    when the route reads it, so the usual error handler answers (413, ``request_too_large``)
    and logs the request.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["request_id"] = new_request_id()
        state["t0"] = time.perf_counter()
        state["arrived"] = datetime.now(timezone.utc)
        limit, seen = self.max_body_bytes, 0
        header = next((v for k, v in scope.get("headers", ()) if k == b"content-length"), b"0")
        declared = int(header) if header.isdigit() else 0

        async def capped_receive() -> Message:
            nonlocal seen
            if declared > limit:
                raise _too_large(limit)
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _too_large(limit)
            return message

        await self.app(scope, capped_receive, send)


def _too_large(limit: int) -> HTTPException:
    # An HTTPException passes through FastAPI's body reading unchanged (other errors become a 400).
    return HTTPException(status_code=413, detail=f"the request body is larger than {limit} bytes")


def _lifespan(own_engine: bool):
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state: GatewayState = app.state.gateway
        await run_in_threadpool(upgrade_database, state.engine)
        if state.backend is None:
            state.backend = await run_in_threadpool(make_backend, state.settings, state.config.batching)
        if isinstance(state.backend, LocalBackend):
            state.backend.batch_observers.append(state.metrics.batch_size.observe)
        if not state.backend.info.watermarked:
            logger.warning("the gateway serves UNWATERMARKED outputs (%s backend)", state.backend.info.kind)
        await state.backend.start()
        state.ready = True
        logger.info("gateway ready: %s backend, models %s, watermark %s", state.backend.info.kind,
                    ", ".join(state.backend.info.model_ids) or "(any)",
                    state.backend.info.watermark.get("key_id") or "off")
        try:
            yield
        finally:
            state.ready = False
            if state.pending:
                await asyncio.gather(*state.pending, return_exceptions=True)
            await state.backend.close()
            await run_in_threadpool(state.log_writer.close)
            state.metrics.close()
            if own_engine:
                state.engine.dispose()

    return lifespan


def create_app(settings: Settings, *, backend: Any = None, guards: Sequence[Any] = (), engine: Any = None,
               config: GatewayConfig | None = None) -> FastAPI:
    """The gateway as an ASGI app.

    ``backend``: a ready :class:`~distillscope.gateway.generation.Backend`; default from the
    settings (proxy if ``upstream_url`` is set, else the local teacher), loaded in the lifespan.
    ``guards``: request guards that see every logged row (see ``enforcement.RequestGuard``).
    ``engine``: a SQLAlchemy engine to share (default: ``settings.resolved_database_url``).
    """
    own_engine = engine is None
    engine = engine if engine is not None else make_engine(settings.resolved_database_url)
    store = AccountStore(engine)
    request_log = RequestLog(engine)
    state = GatewayState(settings=settings, config=config or GatewayConfig(), engine=engine, store=store,
                         request_log=request_log, limiter=make_rate_limiter(settings, engine), backend=backend,
                         metrics=GatewayMetrics(), guards=tuple(guards))
    app = FastAPI(title="distillscope gateway", version=__version__, lifespan=_lifespan(own_engine),
                  description="OpenAI-compatible gateway with accounts, limits, request log and watermark.")
    state.log_writer = GroupCommitWriter(request_log)
    app.state.gateway = state
    app.add_middleware(RequestStampMiddleware, max_body_bytes=state.config.max_body_bytes)
    install_error_handlers(app)
    app.include_router(openai_api.router)
    app.include_router(ops_api.router)
    app.include_router(admin_api.admin_router(store, request_log, settings.admin_token,
                                              max_failures=state.config.admin_max_failures))
    proxied = backend.info.kind == "proxy" if backend is not None else bool(settings.upstream_url)
    install_openapi(app, state.config, generates_locally=not proxied)
    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory distillscope.gateway.app:app_from_env`` (settings from the env)."""
    return create_app(load_settings(), config=GatewayConfig.from_env())
