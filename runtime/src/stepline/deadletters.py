"""Dead letters: messages nobody could act on, kept with their reason — never silently
dropped, never kept without bound.

:func:`record` is the one way a dead letter is written (a function, the relay, the
broker's dead-letter queue, a Webhook call that does not parse): it keeps only what
:func:`stepline.deadletter_limits.bounded` keeps of the body and headers, so one huge or
hostile event cannot grow the table by its size.
:func:`record_transport_failure` is the transport's case: its process is failed in the
same transaction, so the job ends instead of waiting forever."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import psycopg

from stepline.db import execute, fetch_one, jsonb
from stepline.deadletter_limits import bounded, bounded_reason


async def record(
    conn: psycopg.AsyncConnection,
    *,
    consumer: str,
    event_id: str | None,
    account_id: uuid.UUID | None,
    job_id: uuid.UUID | None,
    process_id: uuid.UUID | None,
    origin: str,
    reason: str,
    headers: Mapping[str, Any],
    body: str | None,
) -> None:
    """Keep a dead letter, bounded, in the caller's transaction; a second one of the
    same consumer and event id changes nothing."""
    kept = bounded(body=body, headers=headers)
    await execute(
        conn,
        "dead_letter_insert",
        consumer=consumer,
        event_id=event_id,
        account_id=account_id,
        job_id=job_id,
        process_id=process_id,
        origin=origin,
        reason=bounded_reason(reason),
        headers=jsonb(kept.headers),
        body=kept.body,
        truncated=kept.truncated,
    )


async def record_transport_failure(
    conn: psycopg.AsyncConnection,
    *,
    consumer: str,
    event_id: str,
    attributes: dict[str, Any],
    data: Any,
    reason: str,
    origin: str,
) -> uuid.UUID | None:
    """In the caller's transaction; returns the job to end after the commit, if any."""
    packet = data if isinstance(data, dict) else {}
    process_id = _ref(packet, "process")
    await record(
        conn,
        consumer=consumer,
        event_id=event_id,
        account_id=_ref(packet, "account"),
        job_id=_ref(packet, "job"),
        process_id=process_id,
        origin=origin,
        reason=reason,
        headers=attributes,
        body=data if isinstance(data, str) else json.dumps(data),
    )
    if process_id is None:
        return None
    row = await fetch_one(
        conn,
        "process_fail_by_transport",
        process_id=process_id,
        error=jsonb({"type": "transport", "message": reason}),
    )
    return row["job_id"] if row else None


def _ref(packet: dict[str, Any], name: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(packet[name]["id"]))
    except (KeyError, TypeError, ValueError):
        return None
