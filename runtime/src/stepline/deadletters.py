"""Dead letters: messages nobody could act on, kept with their reason — never silently
dropped, never kept without bound.

:func:`record` is the one way a dead letter is written (a function, the relay, the
broker's dead-letter queue, a Webhook call that does not parse): it keeps at most
:data:`BODY_MAX_BYTES` of the body and :data:`HEADER_MAX_BYTES` of each header value
(:func:`bounded`), so one huge or hostile event cannot grow the table by its size.
:func:`record_transport_failure` is the transport's case: its process is failed in the
same transaction, so the job ends instead of waiting forever."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from stepline.db import execute, fetch_one, jsonb

# enough of a body to see what was wrong with it; the rest is not evidence, only size
BODY_MAX_BYTES = 64 * 1024
HEADER_MAX_BYTES = 4 * 1024
HEADERS_MAX = 100
REASON_MAX_BYTES = 4 * 1024


@dataclass(frozen=True)
class Bounded:
    """What is stored of a dead letter's body and headers; ``truncated`` when either
    was cut."""

    body: str | None
    headers: dict[str, str]
    truncated: bool


def _cut(text: str, limit: int) -> tuple[str, bool]:
    """At most ``limit`` bytes of UTF-8, cut at a character boundary, without the NUL
    characters PostgreSQL's text and jsonb cannot hold."""
    raw = text.replace("\x00", "\ufffd").encode("utf-8", "replace")
    if len(raw) <= limit:
        return raw.decode("utf-8"), False
    return raw[:limit].decode("utf-8", "ignore"), True


def bounded(*, body: str | None, headers: Mapping[str, Any]) -> Bounded:
    kept_body, cut = _cut(body, BODY_MAX_BYTES) if body is not None else (None, False)
    kept: dict[str, str] = {}
    for name, value in list(headers.items())[:HEADERS_MAX]:
        key, key_cut = _cut(str(name), HEADER_MAX_BYTES)
        kept[key], value_cut = _cut(str(value), HEADER_MAX_BYTES)
        cut = cut or key_cut or value_cut
    return Bounded(body=kept_body, headers=kept, truncated=cut or len(headers) > HEADERS_MAX)


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
        reason=_cut(reason, REASON_MAX_BYTES)[0],
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
