"""Queue: each message of a customer's RabbitMQ queue starts one job of the step's
workflow. The message arrives as the RabbitmqSource adapter delivers it — in a cluster
the source the reconciler keeps per Queue step, on one machine its stand-in run by the
platform — POSTed as a binary-mode CloudEvent to ``/{step_id}`` (the source's sink URI
names the step). Served with func's ``invoke: http``: the path says which step.

The answer is the adapter's instruction: 2xx acks the message (its job started, or it
had started it before: the message's id is the idempotency key, so a redelivery after a
crash starts nothing new); 503 (the database is away) has it try again; anything else
rejects it to the queue's dead-letter exchange — a message that cannot start a job (not
JSON for a ``json`` step, a refused start, a step no longer live) is first kept as a
dead letter of the step, with its reason."""

from __future__ import annotations

import uuid
from typing import Any

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings.http import HTTPMessage, from_http_event

from stepline.sdk import (
    CATALOG,
    FunctionHost,
    MalformedEvent,
    PermanentError,
    QueueConfig,
    Refusal,
    StepTarget,
    TriggerRuntime,
    TriggerStep,
)

from .message import NotJson, idempotency_key, read

REJECTED = 422  # not retried by the adapter: the message goes to the dead-letter exchange


def request_headers(scope: dict[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def step_of(scope: dict[str, Any]) -> uuid.UUID:
    try:
        return uuid.UUID(scope["path"].rstrip("/").rsplit("/", 1)[-1])
    except ValueError as exc:
        raise MalformedEvent("POST to /{step_id}: the path names no step") from exc


def event_of(headers: dict[str, str], body: bytes) -> BaseCloudEvent:
    try:
        return from_http_event(HTTPMessage(headers=headers, body=body))
    except Exception as exc:  # the SDK raises several kinds on a request that is no event
        raise MalformedEvent(f"not a binary-mode CloudEvent: {exc}") from exc


def text_of(body: bytes) -> str:
    return body.decode("utf-8", errors="replace")


class Queue:
    spec = CATALOG["Queue"]

    async def http(self, runtime: TriggerRuntime, scope: dict[str, Any], body: bytes
                   ) -> tuple[int, dict[str, Any]]:
        if scope["method"] != "POST":
            return 405, {"error": {"type": "MethodNotAllowed", "message": "POST /{step_id}"}}
        step_id = step_of(scope)
        event = event_of(request_headers(scope), body)
        step = await runtime.trigger_step(step_id, "Queue")
        if step is None:
            reason = f"step {step_id} is not the Queue entry of a live workflow"
            await runtime.dead_letter(event, reason=reason)
            raise PermanentError(reason)
        return await self.start(runtime, step, event, body)

    async def start(self, runtime: TriggerRuntime, step: TriggerStep, event: BaseCloudEvent,
                    body: bytes) -> tuple[int, dict[str, Any]]:
        config = QueueConfig.model_validate(step.config)
        try:
            message = read(event, body, queue=config.queue, format=config.format)
            started = await runtime.fire(
                StepTarget(step.id, "Queue"), payload=message.payload, trigger="queue",
                key=message.key, trigger_data=message.trigger)
        except (NotJson, PermanentError) as exc:
            return await self.reject(runtime, step, event, body, str(exc))
        if isinstance(started, Refusal):
            return await self.reject(runtime, step, event, body, started.message)
        return 200, started.body()

    async def reject(self, runtime: TriggerRuntime, step: TriggerStep, event: BaseCloudEvent,
                     body: bytes, reason: str) -> tuple[int, dict[str, Any]]:
        headers = {k: str(v) for k, v in event.get_attributes().items()}
        await runtime.reject(step, key=idempotency_key(event.get_id()), reason=reason,
                             headers=headers, body=text_of(body))
        return REJECTED, {"outcome": "rejected", "reason": reason}


def new() -> FunctionHost:
    return FunctionHost(Queue())
