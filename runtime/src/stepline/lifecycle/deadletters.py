"""The one writer of dead letters: every message nobody can act on is kept with its
reason — a malformed event, a process that failed for good, a message the transport gave
up on, a Webhook call that does not parse — once per consumer and event however often
it is recorded, and never at its own size: :func:`keep` stores only what
:mod:`stepline.deadletter_limits` allows of the body and headers."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg
from cloudevents.core.base import BaseCloudEvent

from stepline.db import execute, fetch_one, jsonb
from stepline.deadletter_limits import bounded, bounded_reason
from stepline.lifecycle.unit import Unit
from stepline.packet import Packet

ORIGIN_FUNCTION = "function"


@dataclass(frozen=True)
class DeadLetter:
    consumer: str
    event_id: str | None
    reason: str
    origin: str = ORIGIN_FUNCTION
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    account_id: uuid.UUID | None = None
    job_id: uuid.UUID | None = None
    process_id: uuid.UUID | None = None

    @classmethod
    def of_event(cls, consumer: str, event: BaseCloudEvent, *, reason: str,
                 packet: Packet | None = None) -> DeadLetter:
        """A CloudEvent a function could not act on, with what its packet says of it."""
        return cls(
            consumer=consumer, event_id=event.get_id(), reason=reason,
            headers={k: str(v) for k, v in event.get_attributes().items()},
            body=_text(event.get_data()),
            account_id=packet.account.id if packet else None,
            job_id=packet.job.id if packet else None,
            process_id=packet.process.id if packet else None,
        )


async def keep(conn: psycopg.AsyncConnection, letter: DeadLetter) -> None:
    """In the caller's transaction; a second one of the same consumer and event id
    changes nothing."""
    kept = bounded(body=letter.body, headers=letter.headers)
    await execute(
        conn, "dead_letter_insert", consumer=letter.consumer, event_id=letter.event_id,
        account_id=letter.account_id, job_id=letter.job_id, process_id=letter.process_id,
        origin=letter.origin, reason=bounded_reason(letter.reason),
        headers=jsonb(kept.headers), body=kept.body, truncated=kept.truncated,
    )


async def transport_gave_up(unit: Unit, *, consumer: str, event_id: str | None,
                            attributes: dict[str, Any], data: Any, reason: str,
                            origin: str, process_id: uuid.UUID | None = None,
                            job_id: uuid.UUID | None = None) -> None:
    """A message the transport gave up on (the relay on one machine, the broker's
    dead-letter queue in a cluster): kept, and its process failed in the same
    transaction, so its job ends instead of waiting for ever. The process is the one the
    packet names, or (a row too large to read) the one its outbox row names."""
    packet = data if isinstance(data, dict) else {}
    letter = DeadLetter(
        consumer=consumer, event_id=event_id, reason=reason, origin=origin,
        headers={k: str(v) for k, v in attributes.items()},
        body=data if isinstance(data, str) or data is None else json.dumps(data),
        account_id=_ref(packet, "account"), job_id=_ref(packet, "job") or job_id,
        process_id=_ref(packet, "process") or process_id,
    )
    await keep(unit.conn, letter)
    if letter.process_id is None:
        return
    row = await fetch_one(unit.conn, "process_fail_by_transport", process_id=letter.process_id,
                          error=jsonb({"type": "transport", "message": reason}))
    if row is not None:
        unit.may_end(row["job_id"])


def _ref(packet: dict[str, Any], name: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(packet[name]["id"]))
    except (KeyError, TypeError, ValueError):
        return None


def _text(data: Any) -> str | None:
    if data is None or isinstance(data, str):
        return data
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return json.dumps(data)
