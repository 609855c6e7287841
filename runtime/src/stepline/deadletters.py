"""Messages the transport gave up on (the relay in one-machine mode, the broker's
dead-letter queue in production): recorded once, with their reason, and their process
failed in the same transaction, so the job ends instead of waiting forever."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg

from stepline.db import execute, fetch_one, jsonb


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
    await execute(
        conn,
        "dead_letter_insert",
        consumer=consumer,
        event_id=event_id,
        account_id=_ref(packet, "account"),
        job_id=_ref(packet, "job"),
        process_id=process_id,
        origin=origin,
        reason=reason,
        headers=jsonb({k: str(v) for k, v in attributes.items()}),
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
