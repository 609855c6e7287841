"""The CloudEvent a schedule tick is: exactly what a Knative PingSource sends its sink.

Every backend sends the same event, so the ``CronJob`` function cannot tell them apart:
a PingSource (its ``spec.data`` is :func:`tick_data`), a Kubernetes CronJob's pod (its
command is built from :func:`ping_event`) and the local ticker (which POSTs
:func:`ping_event` itself). Pure functions, no I/O."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from cloudevents.core.bindings.http import to_binary_event
from cloudevents.core.v1.event import CloudEvent

PING_TYPE = "dev.knative.sources.ping"
CONTENT_TYPE = "application/json"
NAME_PREFIX = "stepline-"


def object_name(step_id: uuid.UUID | str) -> str:
    """The DNS-safe name of a step's schedule object (45 characters: a CronJob's name
    must leave room for the 11 its Jobs append)."""
    return f"{NAME_PREFIX}{uuid.UUID(str(step_id))}"


def ping_source(namespace: str, name: str) -> str:
    """The ``source`` attribute a PingSource puts on its events."""
    return f"/apis/v1/namespaces/{namespace}/pingsources/{name}"


def tick_data(step_id: uuid.UUID | str, workflow_id: uuid.UUID | str) -> str:
    """The event's data, as the text a PingSource carries in ``spec.data``."""
    return json.dumps({"step_id": str(step_id), "workflow_id": str(workflow_id)},
                      separators=(",", ":"), sort_keys=True)


def ping_event(step_id: uuid.UUID | str, workflow_id: uuid.UUID | str, scheduled_at: datetime,
               namespace: str, name: str, *, event_id: str | None = None,
               ) -> tuple[dict[str, str], bytes]:
    """The tick for ``scheduled_at`` as a binary-mode HTTP request: (headers, body)."""
    if scheduled_at.tzinfo is None:
        raise ValueError("scheduled_at must be timezone-aware")
    event = CloudEvent(
        attributes={
            "specversion": "1.0",
            "id": event_id or str(uuid.uuid4()),
            "type": PING_TYPE,
            "source": ping_source(namespace, name),
            "time": scheduled_at.astimezone(UTC),
            "datacontenttype": CONTENT_TYPE,
        },
        data=tick_data(step_id, workflow_id).encode(),
    )
    message = to_binary_event(event)
    return dict(message.headers), message.body
