"""Operations endpoints: ``/healthz`` (liveness, backend and database) and Prometheus ``/metrics``."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from distillscope.gateway.state import GatewayState, get_state

router = APIRouter(tags=["operations"])


def _database_ok(state: GatewayState) -> bool:
    try:
        with state.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except SQLAlchemyError:
        return False


@router.get("/healthz", summary="Health: backend loaded, database reachable, watermark on or off.")
async def healthz(request: Request) -> Any:
    state = get_state(request)
    database = await run_in_threadpool(_database_ok, state)
    info = state.backend.info if state.backend is not None else None
    ok = state.ready and database
    body = {"status": "ok" if ok else ("starting" if not state.ready else "degraded"),
            "database": "ok" if database else "unreachable",
            "backend": info.kind if info else None,
            "models": list(info.model_ids) if info else [],
            "watermarked": info.watermarked if info else None,
            "watermark_key_id": info.watermark.get("key_id") if info else None,
            "warning": info.warning if info else None}
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics of this gateway process.")
async def metrics(request: Request) -> Response:
    state = get_state(request)
    return Response(state.metrics.render(), media_type=state.metrics.content_type)
