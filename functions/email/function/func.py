"""Email: polls an IMAP mailbox through an ``imap`` connection; each new message starts
one job with the payload :func:`.message.parse_message` makes (BRIEF.md, "Triggers from
everywhere"). A tick — the CloudEvent a Knative PingSource sends (in a cluster, one per
Email step, kept by the reconciler), or the local ticker's (on one machine, every
``every`` seconds) — polls the step's mailbox once (:mod:`.poll`).

How the mailbox is goes to the step's health: connected after a poll that worked;
failing, with the error and since when, after one that did not — a wrong password, an
unreachable or slow server, a missing mailbox — and then tried again only after a
backoff that doubles up to :data:`MAX_BACKOFF_S` (each skipped tick still says it is
failing). A tick for a step already being polled here is skipped; a paused or blocked
workflow's step is not polled at all."""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cloudevents.core.base import BaseCloudEvent

from stepline.sdk import (
    CATALOG,
    EmailConfig,
    FunctionHost,
    MalformedEvent,
    PermanentError,
    StepFailure,
    TriggerRuntime,
    TriggerStep,
)

from .poll import poll

PING_TYPE = "dev.knative.sources.ping"
MAX_BACKOFF_S = 900.0


def step_of_tick(event: BaseCloudEvent) -> uuid.UUID:
    if event.get_type() != PING_TYPE:
        raise MalformedEvent(f"event type {event.get_type()!r} is not {PING_TYPE!r}")
    data = event.get_data()
    try:
        return uuid.UUID(str(data["step_id"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedEvent('a tick\'s data must be {"step_id": "<uuid>"}') from exc


@dataclass
class Backoff:
    failures: int
    until: float
    error: str


class Email:
    spec = CATALOG["Email"]

    def __init__(self, *, context: ssl.SSLContext | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``context``: the TLS trust to use instead of the system's (a private CA)."""
        self.context, self.clock = context, clock
        self.polling: set[uuid.UUID] = set()
        self.backoff: dict[uuid.UUID, Backoff] = {}

    async def fire(self, runtime: TriggerRuntime, event: BaseCloudEvent) -> dict[str, Any]:
        try:
            step_id = step_of_tick(event)
            step = await runtime.trigger_step(step_id, "Email")
            if step is None:
                raise PermanentError(f"step {step_id} is not the Email entry of a live workflow")
        except (MalformedEvent, PermanentError) as exc:
            await runtime.dead_letter(event, reason=str(exc))
            raise
        if step.stopped:
            return {"outcome": "idle", "reason": "the workflow is paused or blocked"}
        if step.id in self.polling:
            return {"outcome": "busy", "reason": "a poll of this step is running"}
        return await self.poll_once(runtime, step)

    async def poll_once(self, runtime: TriggerRuntime, step: TriggerStep) -> dict[str, Any]:
        config = EmailConfig.model_validate(step.config)
        waiting = self.backoff.get(step.id)
        if waiting is not None and self.clock() < waiting.until:
            await runtime.report(step.id, "failing", error=waiting.error)
            return {"outcome": "backing off", "error": waiting.error}
        self.polling.add(step.id)
        try:
            polled = await poll(runtime, step, config, context=self.context)
        except StepFailure as exc:
            return await self.failed(runtime, step, config, str(exc))
        finally:
            self.polling.discard(step.id)
        self.backoff.pop(step.id, None)
        await runtime.report(step.id, "connected")
        return polled.body()

    async def failed(self, runtime: TriggerRuntime, step: TriggerStep, config: EmailConfig,
                     error: str) -> dict[str, Any]:
        failures = self.backoff[step.id].failures + 1 if step.id in self.backoff else 1
        wait = min(config.every * 2 ** (failures - 1), MAX_BACKOFF_S)
        self.backoff[step.id] = Backoff(failures, self.clock() + wait, error)
        await runtime.report(step.id, "failing", error=error)
        return {"outcome": "failing", "error": error, "retry_in_s": wait}


def new() -> FunctionHost:
    return FunctionHost(Email())
