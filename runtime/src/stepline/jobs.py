"""Starting and cancelling jobs: shared by the control plane (manual starts, cancel)
and the trigger functions (CronJob, Webhook), each in its caller's transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from stepline.catalog import CATALOG
from stepline.db import execute, fetch_all, fetch_one, jsonb
from stepline.definition import Version
from stepline.errors import PermanentError
from stepline.messages import Message, outbox_row, outgoing, plan
from stepline.packet import Packet, ProcessRef, Ref, StepRef, WorkflowRef


@dataclass(frozen=True)
class StartedJob:
    id: uuid.UUID
    created: bool  # False: a start with the same idempotency key already made this job
    sent: int = 0  # next steps sent on: a job that sent none may have ended already
    entry_done: int = 0  # 1 when the entry is a trigger, recorded as succeeded at once
    created_at: datetime | None = None


async def start_job(
    conn: psycopg.AsyncConnection,
    *,
    account_id: uuid.UUID,
    workflow_id: uuid.UUID,
    version_number: int,
    version: Version,
    entry_key: str,
    payload: Any,
    trigger: str,
    user_id: uuid.UUID | None = None,
    idempotency_key: str | None = None,
    parent_process_id: uuid.UUID | None = None,
    depth: int = 0,
) -> StartedJob:
    """Create a job at the entry step, in the caller's transaction.

    A trigger entry (Manual, CronJob, Webhook) is recorded as a finished process whose
    output is the payload, sent on by the step's ``output``; an action entry becomes a
    pending process with its outbox row. The caller ends the job after its commit when
    nothing was sent on (:func:`stepline.jobs.finish`)."""
    job_id = uuid.uuid4()
    entry = version.steps[entry_key]
    packet = Packet(
        payload=payload,
        account=Ref(id=account_id),
        user=Ref(id=user_id) if user_id else None,
        job=Ref(id=job_id),
        workflow=WorkflowRef(id=workflow_id, version=version_number),
        step=StepRef(id=entry.id, key=entry.key),
        process=ProcessRef(id=uuid.uuid4()),
    )
    spec = CATALOG.get(entry.function)
    if spec is not None and spec.kind == "trigger":
        try:
            _, messages = plan(entry, payload, version)
        except PermanentError as exc:
            raise StartRefused(str(exc)) from exc
        entry_rows = [{"id": str(packet.process.id), "step_id": str(entry.id),
                       "step_key": entry.key, "function": entry.function}]
        processes, rows = outgoing(packet, messages, workflow_version_id=version.id)
    else:
        entry_rows = []
        processes, rows = outgoing(packet, [Message(entry, payload)],
                                   workflow_version_id=version.id, root=True)
    row = await fetch_one(
        conn,
        "job_start",
        id=job_id,
        account_id=account_id,
        workflow_id=workflow_id,
        workflow_version_id=version.id,
        version=version_number,
        trigger=trigger,
        payload=jsonb(payload),
        idempotency_key=idempotency_key,
        parent_process_id=parent_process_id,
        depth=depth,
        user_id=user_id,
        entry=jsonb(entry_rows),
        processes=jsonb(processes),
        rows=jsonb(rows),
    )
    if row["id"] is None:
        existing = await fetch_one(
            conn,
            "job_by_idempotency_key",
            workflow_id=workflow_id,
            idempotency_key=idempotency_key,
        )
        return StartedJob(id=existing["id"], created=False)
    return StartedJob(id=job_id, created=True, sent=row["sent"], entry_done=row["entry"],
                      created_at=row["created_at"])


class StartRefused(PermanentError):
    """The start's payload does not fit the entry step (a non-array under ``multiple``)."""


async def finish(conn: psycopg.AsyncConnection, job_id: uuid.UUID) -> str | None:
    """End the job if nothing of it is outstanding; run after the commit that could
    have finished it. A child job's end delivers its waiting parent process again, in
    the same transaction. Returns the final status, or None if it is still running."""
    async with conn.transaction():
        row = await fetch_one(conn, "job_finish", job_id=job_id)
        if row and row["parent_process_id"]:
            await redeliver(conn, row["parent_process_id"])
    return row["status"] if row else None


async def finish_stale(conn: psycopg.AsyncConnection, *, min_age_s: float) -> int:
    """End the running jobs with nothing outstanding whose end check was lost (a crash
    between a commit and its check): the repair every periodic sweeper runs."""
    async with conn.transaction():
        rows = await fetch_all(conn, "jobs_finish_stale", min_age_s=min_age_s)
        for row in rows:
            if row["parent_process_id"]:
                await redeliver(conn, row["parent_process_id"])
    return len(rows)


async def redeliver(conn: psycopg.AsyncConnection, process_id: uuid.UUID) -> bool:
    """A new message for a process still outstanding, carrying its recorded input."""
    row = await fetch_one(conn, "process_packet", process_id=process_id)
    if row is None or row["status"] not in ("pending", "running"):
        return False
    packet = Packet(
        payload=row["input"],
        account=Ref(id=row["account_id"]),
        user=Ref(id=row["user_id"]) if row["user_id"] else None,
        job=Ref(id=row["job_id"]),
        workflow=WorkflowRef(id=row["workflow_id"], version=row["version"]),
        step=StepRef(id=row["step_id"], key=row["step_key"]),
        process=ProcessRef(id=row["id"], parent_id=row["parent_id"]),
        attempt=max(row["attempt"], 1),
    )
    await execute(
        conn, "outbox_insert", rows=jsonb([outbox_row(packet, destination=row["function"])])
    )
    return True


async def cancel(conn: psycopg.AsyncConnection, job_id: uuid.UUID) -> bool:
    """Cancel a running job with its pending processes and undelivered messages, in the
    caller's transaction. False if the job had already ended."""
    if await fetch_one(conn, "job_cancel", job_id=job_id) is None:
        return False
    await execute(conn, "job_cancel_processes", job_id=job_id)
    await execute(conn, "job_cancel_outbox", job_id=job_id)
    return True
