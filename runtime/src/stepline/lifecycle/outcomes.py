"""What became of a delivery, recorded once: each outcome is one transaction that starts
with the delivery's inbox row, so a second delivery of the same event changes nothing
(:class:`Duplicate`). Jobs a recorded outcome may have ended are checked after its
commit, by the unit of work.

The two outcomes every step has — its begin and, most often, its success — are group
committed (:mod:`.batching`): deliveries that arrive together begin in one round trip
and succeed in one statement, one transaction and one WAL flush (``steps_succeed``).
A success that creates processes for an account with a monthly quota commits alone,
counted against the quota in its transaction (:mod:`.quota`); over it, the step fails
with the reason. The other outcomes are rare and go one by one:

- :meth:`Outcomes.fail` — the process failed, its message kept as a dead letter.
- :meth:`Outcomes.retry` — the attempt failed for now; the next one goes through the
  outbox with ``not_before``.
- :meth:`Outcomes.wait` — the handler started something it waits for (a child job).
- :meth:`Outcomes.cancel` — the process's job was cancelled before it ran.
- :func:`succeed_within` — a success inside a transaction the handler wrote in too
  (Database.query on the platform database).
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from cloudevents.core.base import BaseCloudEvent
from psycopg_pool import AsyncConnectionPool

from stepline.db import connection, execute, fetch_all, fetch_one, jsonb
from stepline.definition import Version
from stepline.lifecycle.batching import Batcher
from stepline.lifecycle.deadletters import DeadLetter, keep
from stepline.lifecycle.quota import OverQuota, take
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


@dataclass(frozen=True)
class Begun:
    """A delivery's process and job as they were when it began, and what admission says
    of its account and workflow now."""

    seen: bool  # the consumer counted this event already
    status: str | None  # the process's (None: no such process)
    ours: bool  # the process is of the packet's account
    job_status: str | None
    monthly_quota: int | None
    refused: str | None  # why the account's work may not go on (blocked), or None


@dataclass(frozen=True)
class _Success:
    delivery: Delivery
    output: Any
    messages: list[Message]
    version: Version
    logs: list[dict[str, Any]]


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


class Outcomes:
    """The outcomes of one function's deliveries, on its pool."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool
        self._begins: Batcher[Delivery, Begun] = Batcher(self._begin_many, name="begin")
        self._successes: Batcher[_Success, tuple[Outcome, int]] = Batcher(
            self._succeed_many, name="succeed")

    async def begin(self, delivery: Delivery) -> Begun:
        """Whether the delivery may run, with its process marked running if so."""
        return await self._begins.submit(delivery)

    async def succeed(self, delivery: Delivery, begun: Begun, *, output: Any,
                      messages: list[Message], version: Version,
                      logs: list[dict[str, Any]]) -> tuple[Outcome, int]:
        """The success recorded (group committed); the outcome, and how many next steps
        it sent on. Over the account's quota, the process fails instead."""
        success = _Success(delivery, output, messages, version, logs)
        if begun.monthly_quota is None or not messages:
            return await self._successes.submit(success)
        try:
            return await self._succeed_metered(success)
        except OverQuota as exc:
            return await self.fail(delivery, error={"type": "refused", "message": str(exc),
                                                    "attempt": delivery.packet.attempt},
                                   logs=logs), 0

    async def _begin_many(self, deliveries: Sequence[Delivery]) -> list[Begun]:
        rows = [{"i": i, "consumer": d.consumer, "event_id": d.event_id,
                 "process_id": str(d.packet.process.id), "account_id": str(d.packet.account.id),
                 "attempt": d.packet.attempt} for i, d in enumerate(deliveries)]
        async with connection(self.pool) as conn:
            states = await fetch_all(conn, "deliveries_begin", deliveries=jsonb(rows))
        return [_begun(state) for state in states]

    async def _succeed_many(self, successes: Sequence[_Success]) -> list[tuple[Outcome, int]]:
        """One statement for all; an event twice in one batch goes once (the other copy
        is a duplicate), so two deliveries of it can never both send on."""
        first: dict[tuple[str, str], int] = {}
        deliveries, processes, rows = [], [], []
        for i, s in enumerate(successes):
            key = (s.delivery.consumer, s.delivery.event_id)
            if key in first:
                continue
            first[key] = i
            new_processes, new_rows = outgoing(s.delivery.packet, s.messages,
                                               workflow_version_id=s.version.id)
            processes += new_processes
            rows += new_rows
            deliveries.append({"i": i, "consumer": s.delivery.consumer,
                               "event_id": s.delivery.event_id,
                               "process_id": str(s.delivery.packet.process.id),
                               "output": s.output, "logs": s.logs})
        async with connection(self.pool) as conn, work(conn, atomic=False) as unit:
            results = await fetch_all(conn, "steps_succeed", deliveries=jsonb(deliveries),
                                      processes=jsonb(processes), rows=jsonb(rows))
            answers = {r["i"]: r for r in results}
            for r in results:
                if r["counted"] and not r["sent"]:  # one that sent on cannot have ended it
                    unit.may_end(successes[r["i"]].delivery.packet.job.id)
        return [_answer(answers[i]) if first[_key(s)] == i else (Outcome.DUPLICATE, 0)
                for i, s in enumerate(successes)]

    async def _succeed_metered(self, success: _Success) -> tuple[Outcome, int]:
        delivery = success.delivery
        try:
            async with connection(self.pool) as conn, counted(conn, delivery) as unit:
                await take(conn, delivery.packet.account.id, len(success.messages))
                sent = await succeed_within(unit, delivery, output=success.output,
                                            messages=success.messages,
                                            version=success.version, logs=success.logs)
        except Duplicate:
            return Outcome.DUPLICATE, 0
        return Outcome.SUCCEEDED, sent

    async def fail(self, delivery: Delivery, *, error: dict[str, Any],
                   logs: list[dict[str, Any]]) -> Outcome:
        try:
            async with connection(self.pool) as conn, counted(conn, delivery) as unit:
                await execute(conn, "process_fail", process_id=delivery.packet.process.id,
                              error=jsonb(error), logs=jsonb(logs))
                await keep(conn, delivery.dead_letter(error["message"]))
                unit.may_end(delivery.packet.job.id)
        except Duplicate:
            return Outcome.DUPLICATE
        return Outcome.FAILED

    async def retry(self, delivery: Delivery, *, error: dict[str, Any], due: datetime,
                    logs: list[dict[str, Any]]) -> Outcome:
        packet = delivery.packet
        try:
            async with connection(self.pool) as conn, counted(conn, delivery):
                if await execute(conn, "process_wait_retry", process_id=packet.process.id,
                                 error=jsonb(error), logs=jsonb(logs)):  # not when cancelled
                    row = outbox_row(packet.retry(), destination=delivery.consumer,
                                     not_before=due)
                    await execute(conn, "outbox_insert", rows=jsonb([row]))
        except Duplicate:
            return Outcome.DUPLICATE
        return Outcome.RETRY_SCHEDULED

    async def wait(self, delivery: Delivery, *, logs: list[dict[str, Any]]) -> Outcome:
        return await self._settle(delivery, "process_wait", Outcome.WAITING, logs=jsonb(logs))

    async def cancel(self, delivery: Delivery) -> Outcome:
        return await self._settle(delivery, "process_cancel", Outcome.CANCELLED)

    async def _settle(self, delivery: Delivery, query: str, outcome: Outcome,
                      **params: Any) -> Outcome:
        try:
            async with connection(self.pool) as conn, counted(conn, delivery):
                await execute(conn, query, process_id=delivery.packet.process.id, **params)
        except Duplicate:
            return Outcome.DUPLICATE
        return outcome


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


def _key(success: _Success) -> tuple[str, str]:
    return success.delivery.consumer, success.delivery.event_id


def _answer(row: dict[str, Any]) -> tuple[Outcome, int]:
    return (Outcome.SUCCEEDED, row["sent"]) if row["counted"] else (Outcome.DUPLICATE, 0)


def _begun(state: dict[str, Any]) -> Begun:
    refused = None
    if state["account_blocked"]:
        refused = ("the account is blocked: its pending work does not run "
                   f"({state['account_blocked_reason'] or 'no reason given'})")
    elif state["workflow_blocked"]:
        refused = ("the workflow is blocked by an operator: its pending work does not run "
                   f"({state['workflow_blocked_reason'] or 'no reason given'})")
    return Begun(seen=state["seen"], status=state["status"], ours=state["ours"],
                 job_status=state["job_status"], monthly_quota=state["monthly_quota"],
                 refused=refused)
