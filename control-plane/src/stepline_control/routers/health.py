from __future__ import annotations

from fastapi import APIRouter, Request, Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from stepline_control.deps import MetricsDep, SessionDep
from stepline_control.errors import ApiError

router = APIRouter(tags=["health"])

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(session: SessionDep) -> dict[str, str]:
    try:
        await session.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:
        raise ApiError(503, "not_ready", "the database cannot be reached") from exc
    return {"status": "ready"}


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {PROMETHEUS_TEXT: {}},
                             "description": "Prometheus text format"}})
async def metrics(request: Request, registry: MetricsDep) -> Response:
    await registry.refresh(request.app.state.sessions)
    return Response(registry.render(), media_type=PROMETHEUS_TEXT)
