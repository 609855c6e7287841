"""CronJob: a schedule's tick becomes a job. The tick is the CloudEvent a Knative
PingSource sends (``dev.knative.sources.ping``, data ``{"step_id": ...}``, ``time`` the
scheduled time), whoever sends it: the PingSource, a Kubernetes CronJob's pod, or the
local ticker. The job starts with the step's ``config.payload`` (fanned out under
``multiple``), once per step and scheduled minute however often the tick is delivered."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.base import BaseCloudEvent

from stepline.sdk import (
    CATALOG,
    CONFIGURED,
    FunctionHost,
    MalformedEvent,
    PermanentError,
    Refusal,
    StepTarget,
    TriggerRuntime,
    skipped,
)

PING_TYPE = "dev.knative.sources.ping"


def tick_of(event: BaseCloudEvent) -> tuple[uuid.UUID, str]:
    """The step a tick is for, and its scheduled minute (UTC, ISO) as its identity."""
    if event.get_type() != PING_TYPE:
        raise MalformedEvent(f"event type {event.get_type()!r} is not {PING_TYPE!r}")
    data = event.get_data()
    try:
        step_id = uuid.UUID(str(data["step_id"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedEvent('a tick\'s data must be {"step_id": "<uuid>"}') from exc
    scheduled = event.get_time() or datetime.now(UTC)
    minute = scheduled.astimezone(UTC).replace(second=0, microsecond=0)
    return step_id, minute.isoformat()


class CronJob:
    spec = CATALOG["CronJob"]

    async def fire(self, runtime: TriggerRuntime, event: BaseCloudEvent) -> dict[str, Any]:
        try:
            step_id, minute = tick_of(event)
            started = await runtime.start(
                StepTarget(step_id, "CronJob"), payload=CONFIGURED, trigger="cron",
                idempotency_key=f"cron:{step_id}:{minute}")
        except (MalformedEvent, PermanentError) as exc:
            await runtime.dead_letter(event, reason=str(exc))
            raise
        return skipped(started) if isinstance(started, Refusal) else started.body()


def new() -> FunctionHost:
    return FunctionHost(CronJob())
