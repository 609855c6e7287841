"""Pure ASGI middleware: the request size limit (a clear 413, before the body is
read into memory), and each request's context (an id, its JSON access line and its
metrics)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stepline_control import logs
from stepline_control.errors import body as error_body
from stepline_control.metrics import Metrics

log = logging.getLogger("stepline_control.access")

REQUEST_ID_HEADER = b"x-request-id"


class BodyTooLarge(HTTPException):
    """An HTTPException, so that a route reading the body answers 413 through the
    usual error handler rather than a parse error."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the request body is larger than {max_bytes} bytes")


async def _send_json(send: Send, status: int, content: dict[str, Any]) -> None:
    raw = json.dumps(content).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(raw)).encode())]})
    await send({"type": "http.response.body", "body": raw})


class BodyLimit:
    """Refuses a request whose body is larger than ``max_bytes`` with 413: at once when
    its Content-Length says so, or as soon as a chunked body goes past the limit."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    def _too_large(self) -> dict[str, Any]:
        return error_body("payload_too_large",
                          f"the request body is larger than {self.max_bytes} bytes",
                          {"max_bytes": self.max_bytes})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await _send_json(send, 413, self._too_large())
            return
        received, started = 0, False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _send_json(send, 413, self._too_large())


class RequestContext:
    """Gives each request an id (or keeps the caller's ``X-Request-Id``), binds it for
    the log lines, and writes one access line and the request metrics at its end."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(REQUEST_ID_HEADER, b"").decode("latin-1")[:100]
        request_id = given or uuid.uuid4().hex
        token = logs.begin(request_id=request_id)
        status, start = 500, time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []),
                                                  (REQUEST_ID_HEADER, request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(scope["method"], route).observe(elapsed)
            log.info("%s %s %s", scope["method"], route, status,
                     extra={"method": scope["method"], "path": scope["path"], "route": route,
                            "status": status, "duration_ms": round(elapsed * 1000, 2)})
            logs.end(token)
