"""The host of every function: the object ``new()`` returns to func-python.

func-python decodes the CloudEvent (``scope["event"]``), answers the health probes and
calls :meth:`FunctionHost.handle`. Here the runtime's outcome becomes an HTTP status, in
one place (:func:`http_status`), with the transport's rules in mind: eventing-rabbitmq
retries 404/413/425/429/502/503/504 and dead-letters everything else, so a failure the
transport should retry is a 503, never a 500. Each answer is counted and timed
(:mod:`stepline.metrics`), served on a port of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from wsgiref.simple_server import WSGIServer

import uvloop
from cloudevents.core.base import BaseCloudEvent

from stepline import bounded
from stepline.context import Handler, RawHttp, Trigger
from stepline.db import create_pool, dumps
from stepline.errors import (
    ConfigurationError,
    DatabaseUnavailable,
    MalformedEvent,
    PermanentError,
    Rejected,
    TemporaryError,
    TooLarge,
    Unauthorized,
)
from stepline.lifecycle import Outcome
from stepline.metrics import FunctionMetrics, metrics_address, result_of_status, serve
from stepline.packet import BATCH_TYPE, events_of_batch
from stepline.settings import Settings
from stepline.step import StepRuntime

log = logging.getLogger(__name__)

POOL_MAX_SIZE = 20
RETRY_AFTER_S = 1
BODY_MAX_BYTES = 1024 * 1024  # a Webhook call's, as the control plane's default limit


def http_status(outcome: Outcome | BaseException) -> int:
    """The one mapping from what happened to a delivery to the HTTP status answered."""
    if isinstance(outcome, Outcome):
        # recorded: succeeded, failed (with its dead letter), retry scheduled, duplicate,
        # cancelled. The transport's part is done.
        return 200
    if isinstance(outcome, MalformedEvent):
        return 400
    if isinstance(outcome, Unauthorized):
        return 401
    if isinstance(outcome, TooLarge):
        return 413
    if isinstance(outcome, DatabaseUnavailable | TemporaryError):
        return 503
    if isinstance(outcome, PermanentError):
        return 422  # a trigger that cannot fire: kept as a dead letter
    return 500


class FunctionHost:
    """Serves one handler under func-python: ``def new(): return FunctionHost(Handler())``."""

    def __init__(self, handler: Handler, *, settings: Settings | None = None) -> None:
        # new() runs before func-python starts its event loop: this makes it uvloop's
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        self.handler = handler
        self._settings = settings
        self._runtime: StepRuntime | None = None
        self._opened: asyncio.Task[None] | None = None
        self.metrics = FunctionMetrics(handler.spec.name)
        self._metrics_server: WSGIServer | None = None

    def start(self, cfg: dict[str, str]) -> None:
        """func-python's start hook: settings are read here, once."""
        settings = self._settings or Settings()
        bounded.configure(settings.sandbox_limits)
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per call is noise
        url = settings.database_url
        if not url:
            raise ConfigurationError("STEPLINE_DATABASE_URL is not set")
        pool = create_pool(url, max_size=POOL_MAX_SIZE)
        self._runtime = StepRuntime(pool=pool, handler=self.handler, settings=settings)
        address = metrics_address(cfg)
        if address is not None and self._metrics_server is None:
            self._metrics_server = serve(self.metrics.registry, address)

    async def _runtime_ready(self) -> StepRuntime:
        if self._runtime is None:
            self.start({})
        assert self._runtime is not None
        if self._opened is None:
            self._opened = asyncio.ensure_future(self._runtime.pool.open(wait=False))
        await self._opened
        return self._runtime

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = time.perf_counter()
        if isinstance(self.handler, RawHttp):
            return await self._handle_http(scope, receive, send, started)
        event = scope["event"]
        if event.get_type() == BATCH_TYPE:
            return await self._handle_batch(event, send)
        status, body = await self._deliver(event, started)
        await respond(send, status, body)

    async def _deliver(self, event: BaseCloudEvent, started: float
                       ) -> tuple[int, dict[str, Any]]:
        """One event's delivery, counted and timed: its HTTP status and answer."""
        try:
            runtime = await self._runtime_ready()
            if isinstance(self.handler, Trigger):
                body = await self.handler.fire(runtime, event)
                outcome: Outcome | BaseException = Outcome.SUCCEEDED
            else:
                outcome = await runtime.deliver(event)
                body = {"outcome": str(outcome)}
        except Exception as exc:
            outcome = exc
            body = error_body(exc)
            if http_status(exc) == 500:
                log.exception("delivery of event %s failed", event.get_id())
            else:
                log.warning("delivery of event %s: %s", event.get_id(), exc)
        status = http_status(outcome)
        result = outcome.value if isinstance(outcome, Outcome) else result_of_status(status)
        self.metrics.observe(result, status, time.perf_counter() - started)
        return status, body

    async def _handle_batch(self, batch: BaseCloudEvent, send: Any) -> None:
        """A batch of events in one request (the one-machine relay sends them so): each
        delivered as if it came alone, all at once, so that their begins and successes
        are committed together; one answer with each event's status."""
        started = time.perf_counter()
        try:
            events = events_of_batch(batch)
        except MalformedEvent as exc:
            return await respond(send, http_status(exc), error_body(exc))
        answers = await asyncio.gather(*(self._deliver(event, started) for event in events))
        await respond(send, 200, {"results": [
            {"id": event.get_id(), "status": status, **body}
            for event, (status, body) in zip(events, answers, strict=True)]})

    async def _handle_http(self, scope: dict[str, Any], receive: Any, send: Any,
                           started: float) -> None:
        """func-python's ``invoke: http``: the handler reads the request itself."""
        try:
            runtime = await self._runtime_ready()
            status, body = await self.handler.http(runtime, scope, await read_body(receive))
        except Exception as exc:
            status, body = http_status(exc), error_body(exc)
            if status == 500:
                log.exception("request %s %s failed", scope.get("method"), scope.get("path"))
        self.metrics.observe(result_of_status(status), status, time.perf_counter() - started)
        await respond(send, status, body)

    def alive(self) -> bool:
        return True

    def ready(self) -> bool:
        return self._runtime is not None

    def stop(self) -> None:
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
        if self._runtime is not None and self._opened is not None:
            asyncio.get_running_loop().create_task(self._runtime.pool.close())


def error_body(exc: BaseException) -> dict[str, Any]:
    error: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, Rejected):
        error["problems"] = exc.problems
    return {"error": error}


async def read_body(receive: Any, limit: int = BODY_MAX_BYTES) -> bytes:
    """A raw HTTP function's request body (a Webhook call's): at most ``limit`` bytes."""
    chunks, more, size = [], True, 0
    while more:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the request body is larger than {limit} bytes")
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


async def respond(send: Any, status: int, body: dict[str, Any]) -> None:
    raw = getattr(send, "http", send)  # func-python wraps send; plain ASGI send works too
    payload = dumps(body)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    if status == 503:
        headers.append((b"retry-after", str(RETRY_AFTER_S).encode()))
    await raw({"type": "http.response.start", "status": status, "headers": headers})
    await raw({"type": "http.response.body", "body": payload})
