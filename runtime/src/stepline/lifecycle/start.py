"""The one way a job starts: manual starts, Webhook calls, schedule ticks, Workflow.call
children and service calls all come through :func:`start`.

A start reads one row (the target step or workflow, its current version, and what
admission needs), lets the caller's check see the entry step's config and the payload
(a Webhook's token and schema), applies the one admission rule, and writes the job, its
entry and first messages in one statement — or records the refusal. A start with an
idempotency key already used starts nothing new and answers the first start's job."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from stepline.catalog import CATALOG
from stepline.db import connection, execute, fetch_one, jsonb
from stepline.definition import Version
from stepline.errors import PermanentError
from stepline.lifecycle.admission import Gate, Refusal, refusal
from stepline.lifecycle.quota import OverQuota, take
from stepline.lifecycle.services import ServiceTarget, check_input, for_caller, service_row
from stepline.lifecycle.unit import Unit, work
from stepline.lifecycle.versions import Versions
from stepline.messages import Message, outgoing, plan
from stepline.packet import Packet, ProcessRef, Ref, StepRef, WorkflowRef

Check = Callable[[dict[str, Any], Any], Awaitable[None]]
CONFIGURED = object()  # the payload is the target step's own ``config.payload`` (CronJob)


class NotStartable(PermanentError):
    """The target cannot start a job at all: unknown, deleted, not the entry of its
    workflow's current version, or not the function it claims to be."""


class StartRefused(PermanentError):
    """The payload does not fit the entry step (a non-array under ``multiple``)."""


@dataclass(frozen=True)
class StepTarget:
    """A trigger step (CronJob, Webhook...): it must be its workflow's entry."""

    step_id: uuid.UUID
    function: str
    account_id: uuid.UUID | None = None  # a caller of that account only (else: not found)


@dataclass(frozen=True)
class WorkflowTarget:
    """A workflow of an account, started at its entry step (a person, a call)."""

    workflow_id: uuid.UUID
    account_id: uuid.UUID


@dataclass(frozen=True)
class Parent:
    """The process a child job reports to when it ends (Workflow.call)."""

    process_id: uuid.UUID
    depth: int


@dataclass(frozen=True)
class Started:
    job_id: uuid.UUID
    workflow_id: uuid.UUID
    version: int
    created: bool  # False: a start with the same idempotency key made this job already
    sent: int = 0  # first messages sent on: a job that sent none may have ended already
    entry_done: int = 0  # 1 when the entry is a trigger, recorded as succeeded at once
    created_at: datetime | None = None

    def body(self) -> dict[str, Any]:
        """A trigger function's answer."""
        return {"outcome": "started" if self.created else "duplicate",
                "job_id": str(self.job_id)}


def skipped(refused: Refusal) -> dict[str, Any]:
    """A trigger function's answer when admission refused the start."""
    return {"outcome": "skipped", "reason": refused.message}


async def start(unit: Unit, versions: Versions,
                target: StepTarget | WorkflowTarget | ServiceTarget, *,
                payload: Any, trigger: str, idempotency_key: str | None = None,
                user_id: uuid.UUID | None = None, parent: Parent | None = None,
                check: Check | None = None, trigger_data: dict[str, Any] | None = None
                ) -> Started | Refusal:
    """In the unit's transaction. A refusal is recorded in it (counted in usage), so the
    caller commits the unit either way. A service call runs the version the service
    pins, in the publisher's account, and admission is the publisher's. ``trigger_data``
    is the packet's ``trigger``."""
    row = await _target(unit.conn, target)
    if payload is CONFIGURED:
        payload = row["config"].get("payload", {})
    if check is not None:
        await check(row["config"], payload)
    if isinstance(target, ServiceTarget):
        await check_input(row, payload)
    refused = await _admit(unit, row, starting=True)
    if refused is not None:
        return _as_told(target, row, refused)
    version = await versions.get(unit.conn, row["workflow_id"], row["version"])
    options = {"payload": payload, "trigger": trigger, "idempotency_key": idempotency_key,
               "user_id": user_id, "parent": parent, "trigger_data": trigger_data}
    try:
        started = await _insert(unit.conn, version, row, **options)
    except OverQuota as exc:
        return _as_told(target, row, await _refused(unit, row,
                                                    Refusal("quota_exceeded", str(exc))))
    if started.created and not started.sent:
        unit.may_end(started.job_id)
    return started


def _as_told(target: StepTarget | WorkflowTarget | ServiceTarget, row: dict[str, Any],
             refused: Refusal) -> Refusal:
    """A service's caller is told the refusal without the publisher's reasons."""
    return for_caller(refused, row) if isinstance(target, ServiceTarget) else refused


async def admission(unit: Unit, target: WorkflowTarget) -> Refusal | None:
    """The one rule for work inside a running job of the workflow (a process retried by
    hand): the refusal, recorded in the unit, or None."""
    return await _admit(unit, await _target(unit.conn, target), starting=False)


async def _admit(unit: Unit, row: dict[str, Any], *, starting: bool) -> Refusal | None:
    refused = refusal(_gate(row), starting=starting)
    if refused is None:
        return None
    return await _refused(unit, row, refused)


async def _refused(unit: Unit, row: dict[str, Any], refused: Refusal) -> Refusal:
    """The refusal, counted in today's usage (a pause is not counted)."""
    if refused.counted:
        await execute(unit.conn, "usage_refused", account_id=row["account_id"],
                      day=datetime.now(UTC).date())
    return refused


async def _target(conn: psycopg.AsyncConnection,
                  target: StepTarget | WorkflowTarget | ServiceTarget) -> dict[str, Any]:
    if isinstance(target, ServiceTarget):
        return await service_row(conn, target)
    if isinstance(target, StepTarget):
        row = await fetch_one(conn, "start_target", step_id=target.step_id, workflow_id=None,
                              account_id=target.account_id)
        if row is None or row["step_key"] is None:
            raise NotStartable(f"step {target.step_id} is in no current workflow version")
        if row["function"] != target.function or row["step_key"] != row["entry_step_key"]:
            raise NotStartable(f"step {target.step_id} is not the {target.function} entry "
                               "of its workflow")
        return row
    row = await fetch_one(conn, "start_target", step_id=None, workflow_id=target.workflow_id,
                          account_id=target.account_id)
    if row is None:
        raise NotStartable(f"workflow {target.workflow_id} does not exist in this account")
    return row


def _gate(row: dict[str, Any]) -> Gate:
    """Admission's row: the target's, and what the account's quota counted this month."""
    quota = row["monthly_quota"]
    used = row["quota_used"] if quota is not None else 0
    return Gate(account_id=row["account_id"], account_blocked=row["account_blocked"],
                account_blocked_reason=row["account_blocked_reason"],
                workflow_blocked=row["workflow_blocked"],
                workflow_blocked_reason=row["workflow_blocked_reason"],
                paused=row["paused"], monthly_quota=quota, used=used)


def month_start(now: datetime) -> datetime:
    """Where a monthly quota's month begins: usage days are UTC days."""
    return datetime(now.year, now.month, 1, tzinfo=UTC)


async def month_processes(conn: psycopg.AsyncConnection, account_id: uuid.UUID, *,
                          cap: int = 2**31 - 1) -> int:
    """The processes a monthly quota counts for the account, up to ``cap``."""
    row = await fetch_one(conn, "processes_this_month", account_id=account_id,
                          since=month_start(datetime.now(UTC)), cap=cap)
    return int(row["n"])


async def _insert(conn: psycopg.AsyncConnection, version: Version, row: dict[str, Any], *,
                  payload: Any, trigger: str, idempotency_key: str | None,
                  user_id: uuid.UUID | None, parent: Parent | None,
                  trigger_data: dict[str, Any] | None = None) -> Started:
    """The job at its entry step, in one statement. A trigger entry (Manual, CronJob,
    Webhook) is recorded as a finished process whose output is the payload, sent on by
    the step's ``output``; an action entry becomes a pending process with its message."""
    job_id, workflow_id = uuid.uuid4(), row["workflow_id"]
    entry = version.steps[version.entry_key]
    packet = Packet(
        payload=payload, account=Ref(id=row["account_id"]),
        user=Ref(id=user_id) if user_id else None, job=Ref(id=job_id),
        workflow=WorkflowRef(id=workflow_id, version=version.number),
        step=StepRef(id=entry.id, key=entry.key), process=ProcessRef(id=uuid.uuid4()),
        trigger=trigger_data,
    )
    entry_rows, processes, rows = _first_messages(packet, entry, version, row.get("entry_kind"))
    if row["monthly_quota"] is None:
        return await _write(conn, version, row, job_id=job_id, payload=payload,
                            trigger=trigger, idempotency_key=idempotency_key,
                            user_id=user_id, parent=parent, entry_rows=entry_rows,
                            processes=processes, rows=rows, trigger_data=trigger_data)
    try:  # counted with the quota: both or neither (a savepoint)
        async with conn.transaction():
            await take(conn, row["account_id"], len(entry_rows) + len(processes))
            started = await _write(conn, version, row, job_id=job_id, payload=payload,
                                   trigger=trigger, idempotency_key=idempotency_key,
                                   user_id=user_id, parent=parent, entry_rows=entry_rows,
                                   processes=processes, rows=rows, trigger_data=trigger_data)
            if not started.created:
                raise _Uncounted(started)
    except _Uncounted as repeat:  # an idempotent repeat makes nothing, counts nothing
        return repeat.started
    return started


class _Uncounted(Exception):
    def __init__(self, started: Started) -> None:
        self.started = started


async def _write(conn: psycopg.AsyncConnection, version: Version, row: dict[str, Any], *,
                 job_id: uuid.UUID, payload: Any, trigger: str, idempotency_key: str | None,
                 user_id: uuid.UUID | None, parent: Parent | None,
                 entry_rows: list[dict[str, Any]], processes: list[dict[str, Any]],
                 rows: list[dict[str, Any]], trigger_data: dict[str, Any] | None) -> Started:
    workflow_id = row["workflow_id"]
    written = await fetch_one(
        conn, "job_start", id=job_id, account_id=row["account_id"], workflow_id=workflow_id,
        workflow_version_id=version.id, version=version.number, trigger=trigger,
        payload=jsonb(payload), idempotency_key=idempotency_key,
        parent_process_id=parent.process_id if parent else None,
        depth=parent.depth if parent else 0, user_id=user_id, entry=jsonb(entry_rows),
        trigger_data=jsonb(trigger_data) if trigger_data is not None else None,
        processes=jsonb(processes), rows=jsonb(rows), service_id=row.get("service_id"),
        caller_account_id=row.get("caller_account_id"), call_price=row.get("call_price"),
    )
    if written["id"] is None:
        existing = await fetch_one(conn, "job_by_idempotency_key", workflow_id=workflow_id,
                                   idempotency_key=idempotency_key)
        return Started(job_id=existing["id"], workflow_id=workflow_id, version=version.number,
                       created=False)
    return Started(job_id=job_id, workflow_id=workflow_id, version=version.number, created=True,
                   sent=written["sent"], entry_done=written["entry"],
                   created_at=written["created_at"])


def _first_messages(packet: Packet, entry: Any, version: Version, kind: str | None
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """A built-in's kind comes from the catalog; a registered function's from its row."""
    spec = CATALOG.get(entry.function)
    if (spec.kind if spec is not None else kind) != "trigger":
        processes, rows = outgoing(packet, [Message(entry, packet.payload)],
                                   workflow_version_id=version.id, root=True)
        return [], processes, rows
    try:
        _, messages = plan(entry, packet.payload, version)
    except PermanentError as exc:
        raise StartRefused(str(exc)) from exc
    entry_rows = [{"id": str(packet.process.id), "step_id": str(entry.id),
                   "step_key": entry.key, "function": entry.function}]
    processes, rows = outgoing(packet, messages, workflow_version_id=version.id)
    return entry_rows, processes, rows


class Starter:
    """Starts jobs for one process (a trigger function, the control plane): its pool
    and its versions cache, each start a unit of its own."""

    def __init__(self, pool: AsyncConnectionPool, versions: Versions | None = None) -> None:
        self.pool = pool
        self.versions = versions or Versions()

    async def start(self, target: StepTarget | WorkflowTarget | ServiceTarget,
                    **options: Any) -> Started | Refusal:
        async with connection(self.pool) as conn, work(conn) as unit:
            return await start(unit, self.versions, target, **options)
