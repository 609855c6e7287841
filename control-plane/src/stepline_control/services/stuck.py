"""The stuck-job watchdog: a periodic check that finds running jobs with outstanding
work and no progress for longer than a bound, records on each job since when and why
(the waiting process and its last error), and clears that once the job moves or ends.

*Progress* is anything that happened to the job: a process created, started or
finished, an outbox row written or delivered. Waiting is not being stuck: a pending
outbox row counts from when it is due, so a retry scheduled for later keeps its job
out of the list until then; a process waiting for a child job (``Workflow.call``) is as
alive as that child, so a parent is stuck only when its child is. A job with nothing
outstanding is not stuck either: the stale-job sweep ends it.

Several control planes may run the check: one at a time holds a transaction-scoped
advisory lock, and a job's marking is one conditional update, so a newly stuck job is
counted and logged once."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stepline_control.metrics import Metrics

log = logging.getLogger(__name__)

# any constant of the platform's own: two checks never run at once
LOCK_KEY = 0x5715_C0B0
_ids = bindparam("ids", type_=ARRAY(UUID(as_uuid=True)))

# Running jobs older than the bound, with an outstanding process, whose own last
# progress is older than the bound. Rows of other jobs are never read: processes and
# pending outbox rows through their job indexes, delivered rows through their sent_at
# index (the last few minutes' only).
QUIET_JOBS = text("""
WITH bound AS (SELECT now() - make_interval(secs => :after_s) AS cutoff),
candidate AS MATERIALIZED (
    SELECT j.id, j.created_at FROM jobs j, bound
    WHERE j.status = 'running' AND j.created_at < bound.cutoff
      AND EXISTS (SELECT 1 FROM processes p
                  WHERE p.job_id = j.id AND p.status IN ('pending', 'running'))
),
activity AS (
    SELECT c.id, greatest(c.created_at, p.last_at, o.last_at) AS last_progress_at
    FROM candidate c
    CROSS JOIN LATERAL (SELECT max(greatest(created_at, started_at, finished_at)) AS last_at
                        FROM processes WHERE job_id = c.id) p
    -- a pending row counts from when it is due: a retry scheduled later is waiting
    CROSS JOIN LATERAL (SELECT max(greatest(created_at, not_before)) AS last_at
                        FROM outbox WHERE job_id = c.id AND status = 'pending') o
)
SELECT a.id, a.last_progress_at FROM activity a, bound
WHERE a.last_progress_at < bound.cutoff
  AND NOT EXISTS (SELECT 1 FROM outbox o
                  WHERE o.status = 'sent' AND o.sent_at >= bound.cutoff AND o.job_id = a.id)
""")

# The running child jobs the outstanding processes of these jobs wait for.
CHILDREN = text("""
SELECT p.job_id, c.id AS child_id
FROM processes p JOIN jobs c ON c.parent_process_id = p.id AND c.status = 'running'
WHERE p.job_id = ANY(:ids) AND p.status IN ('pending', 'running')
""").bindparams(_ids)

# Per job, its oldest outstanding process with what is known of why it waits: its
# pending message (attempts, last delivery error), an unresolved dead letter, its
# newest child job; and how many processes of the job are outstanding.
CULPRITS = text("""
SELECT DISTINCT ON (p.job_id)
       p.job_id, p.id, p.step_id, p.step_key, p.function, p.status, p.attempt, p.error,
       p.created_at, p.started_at,
       o.id IS NOT NULL AS undelivered, o.attempts AS delivery_attempts, o.last_error,
       d.reason AS dead_letter, c.id AS child_job_id,
       count(*) OVER (PARTITION BY p.job_id) AS outstanding
FROM processes p
LEFT JOIN LATERAL (SELECT id, attempts, last_error FROM outbox
                   WHERE job_id = p.job_id AND status = 'pending' AND process_id = p.id
                   ORDER BY id DESC LIMIT 1) o ON true
LEFT JOIN LATERAL (SELECT reason FROM dead_letters
                   WHERE job_id = p.job_id AND process_id = p.id AND resolved_at IS NULL
                   ORDER BY id DESC LIMIT 1) d ON true
LEFT JOIN LATERAL (SELECT id FROM jobs WHERE parent_process_id = p.id
                   ORDER BY created_at DESC LIMIT 1) c ON true
WHERE p.job_id = ANY(:ids) AND p.status IN ('pending', 'running')
ORDER BY p.job_id, p.created_at, p.id
""").bindparams(_ids)

# Only a running job is marked, and one recorded as stuck since the same moment is not
# written again; ``new``: it was not marked before (``before`` is the row as it was).
MARK = text("""
UPDATE jobs j SET stuck_since = r.since, stuck_reason = r.reason
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(id uuid, since timestamptz, reason jsonb),
     jobs before
WHERE j.id = r.id AND before.id = j.id AND j.status = 'running'
  AND j.stuck_since IS DISTINCT FROM r.since
RETURNING j.id, j.account_id, before.stuck_since IS NULL AS new
""").bindparams(bindparam("rows", type_=JSONB))

CLEAR = text("""
UPDATE jobs SET stuck_since = NULL, stuck_reason = NULL
WHERE stuck_since IS NOT NULL AND NOT (id = ANY(:ids))
RETURNING id
""").bindparams(_ids)


@dataclass(frozen=True)
class StuckJob:
    job_id: uuid.UUID
    since: datetime
    reason: dict[str, Any]


@dataclass
class CheckResult:
    """What one check found: every stuck job, those newly marked, those cleared."""

    stuck: list[StuckJob] = field(default_factory=list)
    newly: list[StuckJob] = field(default_factory=list)
    cleared: list[uuid.UUID] = field(default_factory=list)
    skipped: bool = False  # another control plane was checking


def resolve(quiet: Mapping[uuid.UUID, datetime],
            children: Mapping[uuid.UUID, list[uuid.UUID]]) -> dict[uuid.UUID, datetime]:
    """The stuck jobs and since when, from the quiet ones (own last progress older than
    the bound) and the running child jobs their processes wait for: a quiet job is
    stuck unless a child it waits for is not (that child is progressing); a parent is
    stuck since the latest of its own and its children's last progress."""
    memo: dict[uuid.UUID, datetime | None] = {}

    def since(job_id: uuid.UUID, path: frozenset[uuid.UUID]) -> datetime | None:
        if job_id not in memo:
            moment = quiet.get(job_id) if job_id not in path else None
            for child in children.get(job_id, ()) if moment else ():
                child_since = since(child, path | {job_id})
                if child_since is None:
                    moment = None
                    break
                moment = max(moment, child_since)
            memo[job_id] = moment
        return memo[job_id]

    return {job_id: moment for job_id in quiet if (moment := since(job_id, frozenset()))}


def describe(row: Mapping[str, Any], *, detected_at: datetime) -> dict[str, Any]:
    """The reason recorded on a stuck job, from its oldest outstanding process (a row
    of ``CULPRITS``)."""
    last_error, source = _last_error(row)
    step = f"step {row['step_key']!r} ({row['function']})"
    if row["child_job_id"] is not None:
        waiting_on, message = "child_job", f"{step} waits for child job {row['child_job_id']}"
    elif row["undelivered"]:
        waiting_on = "delivery"
        message = (f"{step} waits for its message to be delivered "
                   f"({row['delivery_attempts']} delivery attempt(s) so far)")
    elif row["status"] == "running":
        waiting_on, message = "function", f"{step} started and never finished"
    else:
        waiting_on, message = "function", f"{step} was delivered and never started"
    if last_error:
        message += f"; last error: {last_error}"
    return {
        "detected_at": detected_at.isoformat(), "message": message, "waiting_on": waiting_on,
        "process": {
            "id": str(row["id"]), "step_id": str(row["step_id"]), "step_key": row["step_key"],
            "function": row["function"], "status": row["status"], "attempt": row["attempt"],
            "created_at": row["created_at"].isoformat(),
            "started_at": row["started_at"].isoformat() if row["started_at"] else None,
        },
        "last_error": last_error, "error_source": source,
        "child_job_id": str(row["child_job_id"]) if row["child_job_id"] else None,
        "outstanding_processes": row["outstanding"],
    }


def _last_error(row: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The newest error known: the message's last delivery failure, then a dead letter,
    then the process's own (a temporary failure before its retry)."""
    if row["last_error"]:
        return row["last_error"], "outbox"
    if row["dead_letter"]:
        return row["dead_letter"], "dead_letter"
    error = row["error"]
    if error:
        return (error.get("message") if isinstance(error, dict) else None) or str(error), "process"
    return None, None


async def find_stuck(session: AsyncSession, *, after_s: float) -> list[StuckJob]:
    """The stuck jobs now, in the session's transaction."""
    quiet = {r.id: r.last_progress_at
             for r in await session.execute(QUIET_JOBS, {"after_s": after_s})}
    if not quiet:
        return []
    children: dict[uuid.UUID, list[uuid.UUID]] = {}
    for row in await session.execute(CHILDREN, {"ids": list(quiet)}):
        children.setdefault(row.job_id, []).append(row.child_id)
    stuck = resolve(quiet, children)
    if not stuck:
        return []
    now = datetime.now(UTC)
    culprits = await session.execute(CULPRITS, {"ids": list(stuck)})
    return [StuckJob(job_id=row["job_id"], since=stuck[row["job_id"]],
                     reason=describe(row, detected_at=now))
            for row in culprits.mappings()]


async def check(sessions: async_sessionmaker[AsyncSession], *, after_s: float,
                metrics: Metrics | None = None) -> CheckResult:
    """One pass: find the stuck jobs, mark the new ones, clear the others; then count
    and log (a warning per newly stuck job)."""
    result = CheckResult()
    async with sessions() as session, session.begin():
        locked = await session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"),
                                      {"key": LOCK_KEY})
        if not locked:
            return CheckResult(skipped=True)
        result.stuck = await find_stuck(session, after_s=after_s)
        by_id = {s.job_id: s for s in result.stuck}
        rows = [{"id": str(s.job_id), "since": s.since.isoformat(), "reason": s.reason}
                for s in result.stuck]
        marked = list(await session.execute(MARK, {"rows": rows})) if rows else []
        result.newly = [by_id[row.id] for row in marked if row.new]
        result.cleared = list(await session.scalars(CLEAR, {"ids": list(by_id)}))
    accounts = {row.id: row.account_id for row in marked}
    for job in result.newly:
        _report(job, accounts[job.job_id], metrics)
    if result.cleared:
        log.info("%d job(s) no longer stuck", len(result.cleared),
                 extra={"job_ids": [str(i) for i in result.cleared]})
    return result


def _report(job: StuckJob, account_id: uuid.UUID, metrics: Metrics | None) -> None:
    if metrics is not None:
        metrics.jobs_stuck_detected.inc()
    process = job.reason["process"]
    log.warning("job stuck: %s", job.reason["message"], extra={
        "account_id": str(account_id), "job_id": str(job.job_id),
        "process_id": process["id"], "function": process["function"],
        "stuck_since": job.since.isoformat(), "waiting_on": job.reason["waiting_on"]})


async def run_periodically(sessions: async_sessionmaker[AsyncSession], *, after_s: float,
                           interval_s: float, metrics: Metrics) -> None:
    """The lifespan's task: a check every ``interval_s``, failures logged and the check
    tried again at the next interval."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await check(sessions, after_s=after_s, metrics=metrics)
        except Exception:
            log.exception("the stuck-job check failed; trying again later")
