"""The packet, the standard message between steps, and its CloudEvent form.

Pure conversions only: no I/O here. On the wire a packet is the ``data`` of a binary-mode
CloudEvent whose ``id`` is unique per message and stable across redeliveries (it is the
outbox row's ``event_id``)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.v1.event import CloudEvent
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stepline.errors import MalformedEvent

EVENT_TYPE = "dev.stepline.process.v1"
# many events in one request: the one-machine relay's way of saving a request per step
BATCH_TYPE = "dev.stepline.batch.v1"
BATCH_MAX = 1000
JSON = "application/json"
# the deepest a payload may nest arrays and objects: far past any real document, and
# short of the depth at which Python's own recursion (pickle, json) gives up
PAYLOAD_MAX_DEPTH = 100


class Ref(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: uuid.UUID


class WorkflowRef(Ref):
    version: int = Field(ge=1)


class StepRef(Ref):
    key: str


class ProcessRef(Ref):
    parent_id: uuid.UUID | None = None


class Packet(BaseModel):
    """``{payload, account, user, job, workflow, step, process, attempt}`` of the brief,
    and ``trigger``: what the trigger that started the job knew of its event besides the
    payload (a queue message's id and properties, a mail's UID), carried to every step."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    payload: Any
    account: Ref
    user: Ref | None = None
    job: Ref
    workflow: WorkflowRef
    step: StepRef
    process: ProcessRef
    attempt: int = Field(default=1, ge=1)
    trigger: dict[str, Any] | None = None

    def for_step(
        self, *, step_id: uuid.UUID, step_key: str, payload: Any, process_id: uuid.UUID
    ) -> Packet:
        """The packet of a message this process sends on to the next step."""
        return self.model_copy(
            update={
                "payload": payload,
                "step": StepRef(id=step_id, key=step_key),
                "process": ProcessRef(id=process_id, parent_id=self.process.id),
                "attempt": 1,
            }
        )

    def retry(self) -> Packet:
        return self.model_copy(update={"attempt": self.attempt + 1})


def event_attributes(packet: Packet, *, event_id: uuid.UUID) -> dict[str, Any]:
    """The CloudEvent attributes of a packet. Extension names are lowercase
    alphanumeric, as eventing-rabbitmq requires."""
    return {
        "specversion": "1.0",
        "id": str(event_id),
        "type": EVENT_TYPE,
        "source": f"/stepline/workflows/{packet.workflow.id}/steps/{packet.step.key}",
        "subject": str(packet.process.id),
        "datacontenttype": JSON,
        "time": datetime.now(UTC).isoformat(),
        "jobid": str(packet.job.id),
        "processid": str(packet.process.id),
        "attempt": str(packet.attempt),
    }


def to_cloudevent(attributes: dict[str, Any], data: Any) -> CloudEvent:
    attrs = dict(attributes)
    if isinstance(attrs.get("time"), str):
        attrs["time"] = datetime.fromisoformat(attrs["time"])
    return CloudEvent(attributes=attrs, data=data)


def batch_body(items: list[tuple[dict[str, Any], str]]) -> bytes:
    """A batch event's data: ``[{"attributes": ..., "data": ...}, ...]``, each event's
    data passed on as the JSON text it already is (never parsed and written again)."""
    parts = [f'{{"attributes":{json.dumps(attributes)},"data":{data}}}'
             for attributes, data in items]
    return ("[" + ",".join(parts) + "]").encode()


def batch_attributes(*, event_id: str, source: str) -> dict[str, Any]:
    return {"specversion": "1.0", "id": event_id, "type": BATCH_TYPE, "source": source,
            "datacontenttype": JSON}


def events_of_batch(batch: BaseCloudEvent) -> list[CloudEvent]:
    """The events a batch carries, or :class:`MalformedEvent` saying why not."""
    items = batch.get_data()
    if not isinstance(items, list) or len(items) > BATCH_MAX:
        raise MalformedEvent(f"a batch's data is an array of at most {BATCH_MAX} events")
    try:
        return [to_cloudevent(item["attributes"], item.get("data")) for item in items]
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedEvent(f"a batch holds something that is no event: {exc}") from exc


def packet_from_event(event: BaseCloudEvent) -> Packet:
    """The packet a delivered CloudEvent carries, or :class:`MalformedEvent` saying why not."""
    if event.get_type() != EVENT_TYPE:
        raise MalformedEvent(f"event type {event.get_type()!r} is not {EVENT_TYPE!r}")
    data = event.get_data()
    if isinstance(data, bytes | str):
        raise MalformedEvent("event data is not JSON (datacontenttype must be application/json)")
    if deeper_than(data, PAYLOAD_MAX_DEPTH + 1):  # the packet's own object is a level
        raise MalformedEvent(f"the payload nests deeper than {PAYLOAD_MAX_DEPTH} levels")
    try:
        return Packet.model_validate(data)
    except ValidationError as exc:
        raise MalformedEvent(f"event data is not a packet: {describe(exc)}") from exc


def deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests arrays and objects deeper than ``limit``, found level by
    level (no recursion: the value may be as deep as a JSON parser allowed)."""
    level = [value]
    for _ in range(limit + 1):
        level = [child for v in level if isinstance(v, dict | list)
                 for child in (v.values() if isinstance(v, dict) else v)]
        if not level:
            return False
    return True


def describe(exc: ValidationError, root: str | None = None) -> str:
    """A validation error as one line naming each field that is wrong (under ``root``)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in ([root] if root else []) + list(err['loc'])) or '(root)'}"
        f": {err['msg']}" for err in exc.errors()
    )
