"""The step runtime: one delivery of one CloudEvent to one function, and the one
transaction that makes it count.

A delivery (1) parses the packet, (2) skips at once if its event id is in the inbox,
(3) marks the process running, (4) runs the handler with the step's rendered config,
then (5) in one transaction records the inbox row, the process's result and the next
messages (processes + outbox rows) — or the failure and its dead letter, or the retry
scheduled through the outbox. A second delivery of the same event changes nothing.
After that commit (never inside it) the job is ended if nothing of it is outstanding.
"""

from __future__ import annotations

import enum
import json
import logging
import traceback
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import psycopg
from cloudevents.core.base import BaseCloudEvent
from psycopg_pool import AsyncConnectionPool

from stepline import deadletters, jobs, templates
from stepline.catalog import FunctionSpec
from stepline.db import connection, execute, fetch_all, fetch_one, jsonb
from stepline.definition import RetryPolicy, Step, Version
from stepline.errors import (
    DatabaseUnavailable,
    MalformedEvent,
    PermanentError,
    TemporaryError,
)
from stepline.messages import outbox_row, outgoing, plan, send
from stepline.packet import Packet, packet_from_event
from stepline.secrets import SecretBox
from stepline.settings import Settings

log = logging.getLogger(__name__)

VERSION_CACHE_SIZE = 512
K = TypeVar("K")
V = TypeVar("V")


class Outcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    WAITING = "waiting"
    FAILED = "failed"
    RETRY_SCHEDULED = "retry_scheduled"
    DUPLICATE = "duplicate"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class StoredConnection:
    name: str
    kind: str
    config: dict[str, Any]
    secret: dict[str, Any]


@dataclass(frozen=True)
class Waiting:
    """A handler's answer when its result comes later (Workflow.call's child job): the
    process stays running, holding no worker, until it is delivered again."""

    reason: str


class Lru(Generic[K, V]):
    """A bounded map that drops the least recently used entry: for what never changes
    once written, such as a workflow version's steps."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> V:
        self._items[key] = value
        self._items.move_to_end(key)
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return value


@dataclass
class Context:
    """What a handler sees: the packet, its step, the rendered config, a log, the
    account's connections, and (for handlers that ask for it) the open step transaction."""

    packet: Packet
    step: Step
    config: dict[str, Any]
    runtime: StepRuntime
    transaction: psycopg.AsyncConnection | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)
    # set by the runtime once the step succeeded: how many next steps it sent on
    sent_on: int = field(default=0, repr=False)

    @property
    def payload(self) -> Any:
        return self.packet.payload

    def log(self, message: str, level: str = "info", **fields: Any) -> None:
        self.logs.append(
            {"at": datetime.now(UTC).isoformat(), "level": level, "message": message, **fields}
        )

    async def connection(self, name: str) -> StoredConnection:
        return await self.runtime.stored_connection(self.packet.account.id, name)


class Handler(Protocol):
    spec: FunctionSpec

    async def run(self, ctx: Context) -> Any: ...


@runtime_checkable
class Trigger(Protocol):
    """A trigger function (CronJob, Webhook): its events are not packets but starts of
    jobs; it answers with what it did (``{"outcome": "started", "job_id": ...}``)."""

    spec: FunctionSpec

    async def fire(self, runtime: StepRuntime, event: BaseCloudEvent) -> dict[str, Any]: ...


@runtime_checkable
class RawHttp(Protocol):
    """A function served with func's ``invoke: http`` (Webhook): it reads the request
    itself and answers ``(status, body)``."""

    spec: FunctionSpec

    async def http(
        self, runtime: StepRuntime, scope: dict[str, Any], body: bytes
    ) -> tuple[int, dict[str, Any]]: ...


def runs_in_transaction(handler: Handler, config: dict[str, Any]) -> bool:
    """Whether the handler's work must commit with the outbox (Database.query on the
    platform database)."""
    check = getattr(handler, "in_transaction", None)
    return bool(check and check(config))


class _Duplicate(Exception):
    """Another delivery of the same event committed first: roll this one back."""


class StepRuntime:
    def __init__(
        self,
        *,
        pool: AsyncConnectionPool,
        handler: Handler | Trigger | RawHttp,
        settings: Settings,
    ) -> None:
        self.pool = pool
        self.handler = handler
        self.settings = settings
        self.consumer = handler.spec.name
        self._versions: Lru[tuple[uuid.UUID, int], Version] = Lru(VERSION_CACHE_SIZE)

    async def deliver(self, event: BaseCloudEvent) -> Outcome:
        try:
            packet = packet_from_event(event)
        except MalformedEvent as exc:
            await self.dead_letter(event, reason=str(exc))
            raise
        async with connection(self.pool) as conn:
            outcome_or_step = await self._begin(conn, event, packet)
        if isinstance(outcome_or_step, Outcome):
            return outcome_or_step
        step, version = outcome_or_step
        ctx = Context(packet=packet, step=step, config={}, runtime=self)
        outcome = await self._run(ctx, event, version)
        # a step that sent next steps on cannot have ended its job: skip the check
        if outcome is Outcome.FAILED or (outcome is Outcome.SUCCEEDED and not ctx.sent_on):
            await self.finish_job(packet.job.id)
        return outcome

    async def _begin(
        self, conn: psycopg.AsyncConnection, event: BaseCloudEvent, packet: Packet
    ) -> Outcome | tuple[Step, Version]:
        """Everything before the handler in one round trip (the version's steps are
        cached): the inbox looked at, the process and its job loaded, the process marked
        running."""
        try:
            version = await self.version(conn, packet.workflow.id, packet.workflow.version)
        except PermanentError as exc:
            await self.dead_letter(event, reason=str(exc))
            raise MalformedEvent(str(exc)) from exc
        step = version.by_id(packet.step.id)
        if step is None or step.function != self.consumer:
            reason = f"step {packet.step.key!r} is not a {self.consumer} step of this version"
            await self.dead_letter(event, reason=reason)
            raise MalformedEvent(reason)
        state = await fetch_one(conn, "delivery_begin", consumer=self.consumer,
                                event_id=event.get_id(), process_id=packet.process.id,
                                account_id=packet.account.id, attempt=packet.attempt)
        if state["seen"]:
            return Outcome.DUPLICATE
        if state["status"] is None or state["account_id"] != packet.account.id:
            reason = f"process {packet.process.id} does not exist in account {packet.account.id}"
            await self.dead_letter(event, reason=reason)
            raise MalformedEvent(reason)
        if state["job_status"] == "cancelled" or state["status"] == "cancelled":
            return await self._settle(event, packet, "process_cancel", Outcome.CANCELLED)
        if state["status"] in ("succeeded", "failed"):
            return Outcome.DUPLICATE
        return step, version

    async def _run(self, ctx: Context, event: BaseCloudEvent, version: Version) -> Outcome:
        packet, step = ctx.packet, ctx.step
        try:
            ctx.config = templates.render(step.config, render_context(packet))
            if runs_in_transaction(self.handler, ctx.config):
                return await self._run_in_transaction(ctx, event, version)
            result = await self.handler.run(ctx)
            if isinstance(result, Waiting):
                ctx.log(result.reason)
                return await self._settle(
                    event, packet, "process_wait", Outcome.WAITING, logs=jsonb(ctx.logs)
                )
            output, messages = plan(step, result, version)
            return await self._commit_success(ctx, event, version, output, messages)
        except DatabaseUnavailable:
            raise
        except TemporaryError as exc:
            return await self._commit_temporary(ctx, event, exc)
        except PermanentError as exc:
            return await self._commit_failure(ctx, event, error("permanent", str(exc), packet))
        except Exception as exc:  # a handler bug fails the process; it must not crash the host
            log.exception("handler of %s failed", self.consumer)
            detail = error("unexpected", f"{type(exc).__name__}: {exc}", packet)
            detail["traceback"] = traceback.format_exc(limit=8)
            return await self._commit_failure(ctx, event, detail)

    async def _run_in_transaction(
        self, ctx: Context, event: BaseCloudEvent, version: Version
    ) -> Outcome:
        try:
            async with connection(self.pool) as conn, conn.transaction():
                if not await self._record_inbox(conn, event, ctx.packet):
                    raise _Duplicate
                ctx.transaction = conn
                result = await self.handler.run(ctx)
                output, messages = plan(ctx.step, result, version)
                await self._write_success(conn, ctx, version, output, messages)
        except _Duplicate:
            return Outcome.DUPLICATE
        return Outcome.SUCCEEDED

    async def _commit_success(self, ctx, event, version, output, messages) -> Outcome:
        processes, rows = outgoing(ctx.packet, messages, workflow_version_id=version.id)
        async with connection(self.pool) as conn:  # autocommit: the statement is the tx
            result = await fetch_one(
                conn, "step_succeed", consumer=self.consumer, event_id=event.get_id(),
                process_id=ctx.packet.process.id, output=jsonb(output),
                logs=jsonb(ctx.logs), processes=jsonb(processes), rows=jsonb(rows))
        ctx.sent_on = result["sent"]
        return Outcome.SUCCEEDED if result["counted"] else Outcome.DUPLICATE

    async def _write_success(self, conn, ctx: Context, version: Version, output, messages) -> None:
        updated = await execute(
            conn,
            "process_succeed",
            process_id=ctx.packet.process.id,
            output=jsonb(output),
            logs=jsonb(ctx.logs),
        )
        if updated:  # nothing goes on from a process cancelled while it ran
            ctx.sent_on = await send(conn, parent=ctx.packet, messages=messages,
                                     workflow_version_id=version.id)

    async def _commit_temporary(self, ctx: Context, event, exc: TemporaryError) -> Outcome:
        packet, policy = ctx.packet, ctx.step.retry
        if packet.attempt >= policy.attempts:
            message = f"gave up after {packet.attempt} attempt(s): {exc}"
            return await self._commit_failure(ctx, event, error("exhausted", message, packet))
        delay = exc.delay_s if exc.delay_s is not None else policy.delay_s(packet.attempt)
        due = datetime.now(UTC) + timedelta(seconds=delay)
        ctx.log(f"attempt {packet.attempt} failed, retrying in {delay:.1f}s: {exc}", "warning")
        try:
            async with connection(self.pool) as conn, conn.transaction():
                if not await self._record_inbox(conn, event, packet):
                    raise _Duplicate
                waiting = await execute(
                    conn,
                    "process_wait_retry",
                    process_id=packet.process.id,
                    error=jsonb(error("temporary", str(exc), packet)),
                    logs=jsonb(ctx.logs),
                )
                if waiting:  # not when the job was cancelled meanwhile
                    row = outbox_row(packet.retry(), destination=self.consumer, not_before=due)
                    await execute(conn, "outbox_insert", rows=jsonb([row]))
        except _Duplicate:
            return Outcome.DUPLICATE
        return Outcome.RETRY_SCHEDULED

    async def _commit_failure(self, ctx: Context, event, detail: dict[str, Any]) -> Outcome:
        try:
            async with connection(self.pool) as conn, conn.transaction():
                if not await self._record_inbox(conn, event, ctx.packet):
                    raise _Duplicate
                await execute(
                    conn,
                    "process_fail",
                    process_id=ctx.packet.process.id,
                    error=jsonb(detail),
                    logs=jsonb(ctx.logs),
                )
                await self._insert_dead_letter(conn, event, ctx.packet, detail["message"])
        except _Duplicate:
            return Outcome.DUPLICATE
        return Outcome.FAILED

    async def _settle(
        self, event, packet: Packet, query: str, outcome: Outcome, **params: Any
    ) -> Outcome:
        try:
            async with connection(self.pool) as conn, conn.transaction():
                if not await self._record_inbox(conn, event, packet):
                    raise _Duplicate
                await execute(conn, query, process_id=packet.process.id, **params)
        except _Duplicate:
            return Outcome.DUPLICATE
        return outcome

    async def _record_inbox(self, conn, event: BaseCloudEvent, packet: Packet) -> bool:
        row = await fetch_one(
            conn,
            "inbox_record",
            consumer=self.consumer,
            event_id=event.get_id(),
            process_id=packet.process.id,
        )
        return row is not None

    async def _insert_dead_letter(self, conn, event, packet: Packet | None, reason: str) -> None:
        await deadletters.record(
            conn,
            consumer=self.consumer,
            event_id=event.get_id(),
            account_id=packet.account.id if packet else None,
            job_id=packet.job.id if packet else None,
            process_id=packet.process.id if packet else None,
            origin="function",
            reason=reason,
            headers=event_headers(event),
            body=event_body(event),
        )

    async def dead_letter(self, event: BaseCloudEvent, *, reason: str) -> None:
        """Keep an event nobody can act on, with the reason."""
        async with connection(self.pool) as conn:
            await self._insert_dead_letter(conn, event, None, reason)

    async def finish_job(self, job_id: uuid.UUID) -> str | None:
        async with connection(self.pool) as conn:
            return await jobs.finish(conn, job_id)

    async def version(self, conn, workflow_id: uuid.UUID, number: int) -> Version:
        """The steps of an immutable version, cached for the life of the process."""
        key = (workflow_id, number)
        if (cached := self._versions.get(key)) is not None:
            return cached
        rows = await fetch_all(conn, "version_steps", workflow_id=workflow_id, version=number)
        if not rows:
            raise PermanentError(f"workflow {workflow_id} has no version {number}")
        return self._versions.put(key, version_from_rows(rows))

    async def stored_connection(self, account_id: uuid.UUID, name: str) -> StoredConnection:
        async with connection(self.pool) as conn:
            row = await fetch_one(conn, "connection_by_name", account_id=account_id, name=name)
        if row is None:
            raise PermanentError(f"connection {name!r} does not exist in this account")
        secret = SecretBox(self.settings.secret_key).open(row["secret"]) if row["secret"] else {}
        return StoredConnection(name=name, kind=row["kind"], config=row["config"], secret=secret)


def version_from_rows(rows: list[dict[str, Any]]) -> Version:
    steps = {
        row["key"]: Step(
            id=row["id"],
            workflow_id=row["workflow_id"],
            key=row["key"],
            name=row["name"],
            function=row["function"],
            config=row["config"],
            next_key=row["next_key"],
            output=row["output"],
            retry=RetryPolicy.model_validate(row["retry"] or {}),
        )
        for row in rows
    }
    return Version(id=rows[0]["workflow_version_id"], steps=steps)


def render_context(packet: Packet) -> dict[str, Any]:
    return packet.model_dump(mode="json")


def error(kind: str, message: str, packet: Packet) -> dict[str, Any]:
    return {"type": kind, "message": message, "attempt": packet.attempt}


def event_headers(event: BaseCloudEvent) -> dict[str, Any]:
    return {k: str(v) for k, v in event.get_attributes().items()}


def event_body(event: BaseCloudEvent) -> str | None:
    data = event.get_data()
    if data is None or isinstance(data, str):
        return data
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return json.dumps(data)
