"""Operations endpoints: ``/healthz`` (liveness), ``/readyz`` (readiness) and Prometheus ``/metrics``.

``/healthz`` answers 200 whenever the process serves HTTP: restart the gateway only when it
fails. ``/readyz`` answers 200 only when the gateway can serve a request right now — backend
loaded, request-log database answering, rate limiter (database or Redis) answering, and in proxy
mode the upstream answering its model list (which it refreshes) — and 503 naming what fails
otherwise: route traffic to the gateway only while it passes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from distillscope.gateway.state import GatewayState, get_state

router = APIRouter(tags=["operations"])

READINESS_TIMEOUT_S = 3.0


def _database_ok(state: GatewayState) -> bool:
    try:
        with state.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except SQLAlchemyError:
        return False


def _limiter_ok(state: GatewayState) -> bool:
    check = getattr(state.limiter, "check", None)
    return True if check is None else bool(check())


async def _backend_ok(state: GatewayState) -> bool:
    if state.backend is None or not state.ready:
        return False
    check = getattr(state.backend, "check", None)
    if check is None:
        return True
    try:
        return bool(await asyncio.wait_for(check(), READINESS_TIMEOUT_S))
    except (asyncio.TimeoutError, OSError):
        return False


def _backend_fields(state: GatewayState) -> dict[str, Any]:
    info = state.backend.info if state.backend is not None else None
    return {"backend": info.kind if info else None,
            "models": list(info.model_ids) if info else [],
            "watermarked": info.watermarked if info else None,
            "watermark_key_id": info.watermark.get("key_id") if info else None,
            "warning": info.warning if info else None}


@router.get("/healthz", summary="Liveness: the process serves HTTP (and what it serves).")
async def healthz(request: Request) -> Any:
    state = get_state(request)
    return JSONResponse({"status": "ok" if state.ready else "starting", **_backend_fields(state)})


@router.get("/readyz", summary="Readiness: backend, request-log database, rate limiter and upstream answer.",
            responses={503: {"description": "Some dependency fails; `failing` names it."}})
async def readyz(request: Request) -> Any:
    state = get_state(request)
    database, limiter, backend = await asyncio.gather(run_in_threadpool(_database_ok, state),
                                                      run_in_threadpool(_limiter_ok, state), _backend_ok(state))
    checks = {"backend": backend, "database": database, "rate_limiter": limiter}
    failing = [name for name, ok in checks.items() if not ok]
    body = {"status": "ready" if not failing else "not_ready",
            "checks": {name: "ok" if ok else "failing" for name, ok in checks.items()},
            "failing": failing, **_backend_fields(state)}
    return JSONResponse(body, status_code=503 if failing else 200)


@router.get("/metrics", summary="Prometheus metrics of this gateway (all workers with a multiprocess directory).")
async def metrics(request: Request) -> Response:
    state = get_state(request)
    return Response(state.metrics.render(), media_type=state.metrics.content_type)
