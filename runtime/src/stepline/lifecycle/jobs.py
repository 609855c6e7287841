"""Ending, repairing, cancelling and re-delivering: what happens to a job as a whole."""

from __future__ import annotations

import uuid

import psycopg

from stepline.db import execute, fetch_all, fetch_one, jsonb
from stepline.messages import outbox_row
from stepline.packet import Packet, ProcessRef, Ref, StepRef, WorkflowRef


async def finish(conn: psycopg.AsyncConnection, job_id: uuid.UUID) -> str | None:
    """End the job if nothing of it is outstanding (run after the commit that could have
    finished it: :class:`stepline.lifecycle.Unit` does). A child job's end delivers its
    waiting parent process again, in the same transaction. The final status, or None
    while the job still runs."""
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
        attempt=max(row["attempt"], 1), trigger=row["trigger_data"],
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
