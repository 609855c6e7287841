"""One queue message, as eventing-rabbitmq's RabbitmqSource adapter POSTs it (or its
one-machine stand-in, ``stepline_relay.onemachine``), made into a job's start: the
payload, the packet's trigger data and the idempotency key. Pure.

The adapter sends a binary-mode CloudEvent: a message that was a CloudEvent keeps its
attributes; any other message is wrapped in a new event whose ``id`` is the AMQP
``message_id`` (a message without one gets an id the adapter makes up — the stand-in
makes a digest of the body, headers and properties instead, see
``stepline_relay.mapping``) and whose data is the body as it came. The AMQP headers of a
message that was no CloudEvent do not reach the sink: the adapter drops them.

- ``format: json``: the body is the payload and must be JSON (a message that is not is
  kept as a dead letter of the step and rejected to the queue's dead-letter exchange);
- ``format: text``: the payload is ``{"text": body}``, bytes that are not UTF-8 replaced.

The packet's trigger data::

    {"queue": str, "message_id": str, "content_type": str | null, "time": str | null,
     "type": str, "source": str, "headers": {extension: value, ...}}
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from cloudevents.core.base import BaseCloudEvent

# CloudEvents' own attributes; everything else the event carries is an extension: a
# header of a message that was a CloudEvent
CORE = frozenset({"specversion", "id", "source", "type", "subject", "time",
                  "datacontenttype", "dataschema"})
KEY_PREFIX = "amqp:"
MAX_KEY = 200  # jobs.idempotency_key


class NotJson(ValueError):
    """A ``format: json`` step's message whose body is not JSON."""


@dataclass(frozen=True)
class QueueMessage:
    payload: Any
    key: str
    trigger: dict[str, Any]


def idempotency_key(event_id: str) -> str:
    """The message's id as a job's idempotency key; an id too long is digested."""
    key = KEY_PREFIX + event_id
    if len(key) <= MAX_KEY:
        return key
    return f"{KEY_PREFIX}sha256:{hashlib.sha256(event_id.encode()).hexdigest()}"


def payload_of(body: bytes, format: Literal["json", "text"]) -> Any:
    if format == "text":
        return {"text": body.decode("utf-8", errors="replace")}
    try:
        return json.loads(body)
    except ValueError as exc:  # UnicodeDecodeError included
        raise NotJson(f"the message body is not JSON ({exc}); a step that takes any text "
                      'says format: "text"') from exc


def trigger_of(event: BaseCloudEvent, queue: str) -> dict[str, Any]:
    attributes = event.get_attributes()
    time = attributes.get("time")
    return {
        "queue": queue, "message_id": event.get_id(),
        "content_type": attributes.get("datacontenttype"),
        "time": time.isoformat() if time is not None else None,
        "type": event.get_type(), "source": event.get_source(),
        "headers": {k: str(v) for k, v in sorted(attributes.items()) if k not in CORE},
    }


def read(event: BaseCloudEvent, body: bytes, *, queue: str,
         format: Literal["json", "text"]) -> QueueMessage:
    """The start of the message's job; :class:`NotJson` when it cannot be one."""
    return QueueMessage(payload=payload_of(body, format), key=idempotency_key(event.get_id()),
                        trigger=trigger_of(event, queue))
