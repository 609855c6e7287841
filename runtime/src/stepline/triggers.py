"""Firing a trigger step (a CronJob tick, a Webhook call): the job starts at the step in
its workflow's current version — unless the workflow is paused or blocked, the account
is blocked or over its monthly quota, in which case the start is skipped and the reason
recorded. A fire with an idempotency key already used starts nothing new."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from stepline.db import execute, fetch_all, fetch_one
from stepline.errors import PermanentError
from stepline.jobs import start_job
from stepline.step import version_from_rows

CONFIGURED = object()  # the payload is the step's own config.payload (CronJob)


class TriggerRefused(PermanentError):
    """The step cannot be fired at all (unknown, not a trigger, not the entry)."""


@dataclass(frozen=True)
class Fired:
    job_id: uuid.UUID | None
    created: bool
    skipped: str | None = None  # why no job started

    def body(self) -> dict[str, Any]:
        if self.skipped:
            return {"outcome": "skipped", "reason": self.skipped}
        outcome = "started" if self.created else "duplicate"
        return {"outcome": outcome, "job_id": str(self.job_id)}


async def fire(
    conn: psycopg.AsyncConnection,
    *,
    step_id: uuid.UUID,
    function: str,
    payload: Any,
    trigger: str,
    idempotency_key: str | None,
    check: Callable[[dict[str, Any], Any], Awaitable[None]] | None = None,
) -> Fired:
    """In the caller's transaction; the caller ends the job after the commit. ``check``
    sees the step's config and the payload first, and raises to refuse the start."""
    target = await fetch_one(conn, "trigger_target", step_id=step_id)
    if target is None:
        raise TriggerRefused(f"step {step_id} is in no current workflow version")
    if target["function"] != function or target["step_key"] != target["entry_step_key"]:
        raise TriggerRefused(f"step {step_id} is not the {function} entry of its workflow")
    if payload is CONFIGURED:
        payload = target["config"].get("payload", {})
    if check is not None:
        await check(target["config"], payload)
    reason = await skip_reason(conn, target)
    if reason:
        await execute(conn, "usage_refused", account_id=target["account_id"],
                      day=datetime.now(UTC).date())
        return Fired(job_id=None, created=False, skipped=reason)
    rows = await fetch_all(
        conn, "version_steps", workflow_id=target["workflow_id"], version=target["current_version"]
    )
    started = await start_job(
        conn,
        account_id=target["account_id"],
        workflow_id=target["workflow_id"],
        version_number=target["current_version"],
        version=version_from_rows(rows),
        entry_key=target["step_key"],
        payload=payload,
        trigger=trigger,
        idempotency_key=idempotency_key,
    )
    return Fired(job_id=started.id, created=started.created)


def month_start(now: datetime) -> datetime:
    """Where a monthly quota's month begins: usage days are UTC days."""
    return datetime(now.year, now.month, 1, tzinfo=UTC)


async def month_processes(conn: psycopg.AsyncConnection, account_id: uuid.UUID, *,
                          cap: int = 2**31 - 1) -> int:
    """The processes a monthly quota counts for the account, up to ``cap``: the one rule
    for manual starts, Webhook calls and schedule ticks alike."""
    row = await fetch_one(conn, "processes_this_month", account_id=account_id,
                          since=month_start(datetime.now(UTC)), cap=cap)
    return int(row["n"])


async def skip_reason(conn: psycopg.AsyncConnection, target: dict[str, Any]) -> str | None:
    if target["account_blocked"]:
        return "the account is blocked"
    if target["workflow_blocked"]:
        return "the workflow is blocked"
    if target["paused"]:
        return "the workflow is paused"
    quota = target["monthly_quota"]
    if quota is not None:
        used = await month_processes(conn, target["account_id"], cap=quota + 1)
        if used >= quota:
            return f"the account reached its monthly quota of {quota} processes"
    return None
