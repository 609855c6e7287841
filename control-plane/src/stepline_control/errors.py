"""API errors: every 4xx is ``{"error": {"code", "message", "details"}}``, and so is
the 500 of a bug (without its details, which go to the log). The one place where the
services' domain errors become HTTP statuses (:data:`STATUS`, :data:`REFUSAL_STATUS`)."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from stepline_control.services.errors import (
    Conflict,
    Invalid,
    Malformed,
    NotFound,
    NotSigned,
    Refused,
    ServiceError,
    Unavailable,
)

log = logging.getLogger(__name__)

HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type"}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


STATUS: dict[type[ServiceError], int] = {
    NotFound: 404, Conflict: 409, Invalid: 422, Malformed: 400, Unavailable: 503,
    NotSigned: 403}
# a refused start: a block is the operator's, a pause the owner's, the quota the month's
REFUSAL_STATUS = {"account_blocked": 403, "workflow_blocked": 403, "workflow_paused": 409,
                  "quota_exceeded": 429}


def status_of(exc: ServiceError) -> int:
    if isinstance(exc, Refused):
        return REFUSAL_STATUS[exc.refusal.code]
    return next(status for kind, status in STATUS.items() if isinstance(exc, kind))


def body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(body(exc.code, exc.message, exc.details), status_code=exc.status)

    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError) -> JSONResponse:
        if isinstance(exc, Refused):
            request.app.state.metrics.starts_refused.labels(exc.code).inc()
            log.warning("start refused: %s", exc.message, extra={"reason": exc.code})
        return JSONResponse(body(exc.code, exc.message, exc.details),
                            status_code=status_of(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # the message only: pydantic's ``input`` would echo what was sent (a secret, say)
        details = [{"field": _field(err["loc"]), "message": err["msg"]} for err in exc.errors()]
        return JSONResponse(body("invalid", "the request is invalid", details), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            body(HTTP_CODES.get(exc.status_code, "error"), str(exc.detail)),
            status_code=exc.status_code, headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(DBAPIError)
    async def _database(_: Request, exc: DBAPIError) -> JSONResponse:
        # a value PostgreSQL cannot store (a NUL in a text, a number JSON cannot hold)
        # is the client's to change; nothing was committed
        if isinstance(exc.orig, psycopg.DataError):
            return JSONResponse(body("invalid", "a value cannot be stored: "
                                     f"{type(exc.orig).__name__}"), status_code=422)
        log.error("database error", exc_info=exc)
        return JSONResponse(body("internal", "internal error"), status_code=500)

    @app.exception_handler(psycopg.DataError)
    async def _driver_data(_: Request, exc: psycopg.DataError) -> JSONResponse:
        # the same, from the runtime's named SQL run on the session's connection
        return JSONResponse(body("invalid", "a value cannot be stored: "
                                 f"{type(exc).__name__}"), status_code=422)

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=exc)
        return JSONResponse(body("internal", "internal error"), status_code=500)
