"""Ending, repairing, cancelling and re-delivering: what happens to a job as a whole."""

from __future__ import annotations

import uuid

import psycopg

from stepline.db import execute, fetch_all, fetch_one, jsonb
from stepline.messages import outbox_row
from stepline.packet import Packet, ProcessRef, Ref, StepRef, WorkflowRef


async def finish(conn: psycopg.AsyncConnection, job_id: uuid.UUID) -> str | None:
    """End the job if nothing of it is outstanding: its final status, or None while it
    still runs (see :func:`finish_many`)."""
    return (await finish_many(conn, [job_id])).get(job_id)


async def finish_many(conn: psycopg.AsyncConnection, job_ids: list[uuid.UUID]
                      ) -> dict[uuid.UUID, str]:
    """End each job that has nothing outstanding, in one statement (run after the commit
    that could have finished them: :class:`stepline.lifecycle.Unit` does). A child job's
    end delivers its waiting parent process again, in the same transaction. The jobs
    ended, with their final status."""
    async with conn.transaction():
        rows = await fetch_all(conn, "jobs_finish", job_ids=job_ids)
        for row in rows:
            if row["parent_process_id"]:
                await redeliver(conn, row["parent_process_id"])
    return {row["id"]: row["status"] for row in rows}


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
    """Cancel a running job with every job it started, their pending processes and
    undelivered messages, in the caller's transaction; a cancelled child job's waiting
    parent is delivered again, so its step ends (failed: its child was cancelled) instead
    of waiting for ever. False if the job had already ended."""
    rows = await fetch_all(conn, "job_cancel", job_id=job_id)
    for row in rows:  # the parents of the jobs below it are cancelled with them
        if row["id"] == job_id and row["parent_process_id"]:
            await redeliver(conn, row["parent_process_id"])
    return bool(rows)
