"""What became of a delivery, recorded once: each outcome is one transaction that starts
with the delivery's inbox row, so a second delivery of the same event changes nothing
(:class:`Duplicate`). Jobs a recorded outcome may have ended are checked after its
commit, by the unit of work.

- :func:`succeed` — the process's result, its next processes and their messages: one
  statement (``step_succeed``) on an autocommit connection, one round trip.
- :func:`succeed_within` — the same, inside a transaction the handler wrote in too
  (Database.query on the platform database).
- :func:`fail` — the process failed, its message kept as a dead letter.
- :func:`retry` — the attempt failed for now; the next one goes through the outbox with
  ``not_before``.
- :func:`wait` — the handler started something it waits for (a child job).
- :func:`cancel` — the process's job was cancelled before it ran.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from cloudevents.core.base import BaseCloudEvent

from stepline.db import execute, fetch_one, jsonb
from stepline.definition import Version
from stepline.lifecycle.deadletters import DeadLetter, keep
from stepline.lifecycle.unit import Unit, work
from stepline.messages import Message, outbox_row, outgoing
from stepline.packet import Packet


class Outcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    WAITING = "waiting"
    FAILED = "failed"
    RETRY_SCHEDULED = "retry_scheduled"
    DUPLICATE = "duplicate"
    CANCELLED = "cancelled"


class Duplicate(Exception):
    """Another delivery of the same event committed first: this one rolls back."""


@dataclass(frozen=True)
class Delivery:
    """One event delivered to one consumer (a function), and the packet it carries."""

    consumer: str
    event: BaseCloudEvent
    packet: Packet

    @property
    def event_id(self) -> str:
        return self.event.get_id()

    def dead_letter(self, reason: str) -> DeadLetter:
        return DeadLetter.of_event(self.consumer, self.event, reason=reason, packet=self.packet)


@asynccontextmanager
async def counted(conn: psycopg.AsyncConnection, delivery: Delivery) -> AsyncIterator[Unit]:
    """A unit whose first write is the delivery's inbox row: :class:`Duplicate` when
    another delivery of the event counted first (nothing else is written)."""
    async with work(conn) as unit:
        row = await fetch_one(conn, "inbox_record", consumer=delivery.consumer,
                              event_id=delivery.event_id, process_id=delivery.packet.process.id)
        if row is None:
            raise Duplicate
        yield unit


async def succeed(conn: psycopg.AsyncConnection, delivery: Delivery, *, output: Any,
                  messages: list[Message], version: Version, logs: list[dict[str, Any]]
                  ) -> tuple[Outcome, int]:
    """The whole success as one statement on an autocommit connection: the outcome, and
    how many next steps it sent on."""
    packet = delivery.packet
    processes, rows = outgoing(packet, messages, workflow_version_id=version.id)
    async with work(conn, atomic=False) as unit:
        result = await fetch_one(
            conn, "step_succeed", consumer=delivery.consumer, event_id=delivery.event_id,
            process_id=packet.process.id, output=jsonb(output), logs=jsonb(logs),
            processes=jsonb(processes), rows=jsonb(rows))
        if not result["counted"]:
            return Outcome.DUPLICATE, 0
        if not result["sent"]:  # a step that sent next steps on cannot have ended its job
            unit.may_end(packet.job.id)
    return Outcome.SUCCEEDED, result["sent"]


async def succeed_within(unit: Unit, delivery: Delivery, *, output: Any,
                         messages: list[Message], version: Version,
                         logs: list[dict[str, Any]]) -> int:
    """The success inside the unit ``counted`` opened; how many next steps it sent on."""
    packet = delivery.packet
    if not await execute(unit.conn, "process_succeed", process_id=packet.process.id,
                         output=jsonb(output), logs=jsonb(logs)):
        return 0  # cancelled while it ran: nothing goes on
    processes, rows = outgoing(packet, messages, workflow_version_id=version.id)
    if rows:
        await execute(unit.conn, "processes_insert", processes=jsonb(processes))
        await execute(unit.conn, "outbox_insert", rows=jsonb(rows))
    else:
        unit.may_end(packet.job.id)
    return len(rows)


async def fail(conn: psycopg.AsyncConnection, delivery: Delivery, *, error: dict[str, Any],
               logs: list[dict[str, Any]]) -> Outcome:
    try:
        async with counted(conn, delivery) as unit:
            await execute(conn, "process_fail", process_id=delivery.packet.process.id,
                          error=jsonb(error), logs=jsonb(logs))
            await keep(conn, delivery.dead_letter(error["message"]))
            unit.may_end(delivery.packet.job.id)
    except Duplicate:
        return Outcome.DUPLICATE
    return Outcome.FAILED


async def retry(conn: psycopg.AsyncConnection, delivery: Delivery, *, error: dict[str, Any],
                due: datetime, logs: list[dict[str, Any]]) -> Outcome:
    packet = delivery.packet
    try:
        async with counted(conn, delivery):
            if await execute(conn, "process_wait_retry", process_id=packet.process.id,
                             error=jsonb(error), logs=jsonb(logs)):  # not when cancelled
                row = outbox_row(packet.retry(), destination=delivery.consumer, not_before=due)
                await execute(conn, "outbox_insert", rows=jsonb([row]))
    except Duplicate:
        return Outcome.DUPLICATE
    return Outcome.RETRY_SCHEDULED


async def wait(conn: psycopg.AsyncConnection, delivery: Delivery, *,
               logs: list[dict[str, Any]]) -> Outcome:
    return await _settle(conn, delivery, "process_wait", Outcome.WAITING, logs=jsonb(logs))


async def cancel(conn: psycopg.AsyncConnection, delivery: Delivery) -> Outcome:
    return await _settle(conn, delivery, "process_cancel", Outcome.CANCELLED)


async def _settle(conn: psycopg.AsyncConnection, delivery: Delivery, query: str,
                  outcome: Outcome, **params: Any) -> Outcome:
    try:
        async with counted(conn, delivery):
            await execute(conn, query, process_id=delivery.packet.process.id, **params)
    except Duplicate:
        return Outcome.DUPLICATE
    return outcome
