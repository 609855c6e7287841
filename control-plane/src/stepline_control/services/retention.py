"""Retention: finished jobs (their processes go with them), sent outbox rows, old inbox
rows and dead letters are pruned in bounded batches, each batch its own short
transaction. A job's usage is rolled up into ``usage_daily``, and what its rows billed
into ``billing_daily``, in the transaction that deletes it, so usage per day and the
bills stay exact after the rows are gone. A dead letter goes once it has been resolved
for as long as a finished job is kept, or, left open, after a longer time of its own:
someone may still have to look at it."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

log = logging.getLogger(__name__)

_ids = bindparam("ids", type_=ARRAY(UUID(as_uuid=True)))

FINISHED_JOBS = text("""
SELECT id FROM jobs
WHERE status <> 'running' AND finished_at < :cutoff
LIMIT :batch FOR UPDATE SKIP LOCKED
""")

ROLL_UP = text("""
INSERT INTO usage_daily (account_id, day, jobs, processes)
SELECT account_id, day, sum(jobs), sum(processes) FROM (
    SELECT account_id, (created_at AT TIME ZONE 'UTC')::date AS day,
           count(*) AS jobs, 0 AS processes
    FROM jobs WHERE id = ANY(:ids) GROUP BY 1, 2
    UNION ALL
    SELECT account_id, (created_at AT TIME ZONE 'UTC')::date, 0, count(*)
    FROM processes WHERE job_id = ANY(:ids) GROUP BY 1, 2
) counted
GROUP BY account_id, day
ON CONFLICT (account_id, day) DO UPDATE
SET jobs = usage_daily.jobs + excluded.jobs,
    processes = usage_daily.processes + excluded.processes
""").bindparams(_ids)

# the meters of the jobs about to go: their priced processes (the account's use), and
# for a service call's child job the call, both as its caller used it and as its
# publisher served it
BILL_UP = text("""
INSERT INTO billing_daily (account_id, day, role, item, kind, unit_price, count)
SELECT account_id, day, role, item, max(kind), unit_price, sum(n) FROM (
    SELECT p.account_id, (p.created_at AT TIME ZONE 'UTC')::date AS day, 'used' AS role,
           p.function AS item, coalesce(f.kind, 'action') AS kind, p.unit_price, count(*) AS n
    FROM processes p LEFT JOIN functions f ON f.name = p.function
    WHERE p.job_id = ANY(:ids) AND p.unit_price IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5, 6
    UNION ALL
    SELECT j.caller_account_id, (j.created_at AT TIME ZONE 'UTC')::date, 'used', s.name,
           'service', j.call_price, count(*)
    FROM jobs j JOIN services s ON s.id = j.service_id
    JOIN accounts caller ON caller.id = j.caller_account_id
    WHERE j.id = ANY(:ids)
    GROUP BY 1, 2, 3, 4, 5, 6
    UNION ALL
    SELECT j.account_id, (j.created_at AT TIME ZONE 'UTC')::date, 'served', s.name,
           'service', j.call_price, count(*)
    FROM jobs j JOIN services s ON s.id = j.service_id
    WHERE j.id = ANY(:ids)
    GROUP BY 1, 2, 3, 4, 5, 6
) billed
GROUP BY account_id, day, role, item, unit_price
ON CONFLICT (account_id, day, role, item, unit_price) DO UPDATE
SET count = billing_daily.count + excluded.count
""").bindparams(_ids)

DELETE_JOBS = text("DELETE FROM jobs WHERE id = ANY(:ids)").bindparams(_ids)

DELETE_SENT_OUTBOX = text("""
DELETE FROM outbox WHERE id IN (
    SELECT id FROM outbox WHERE status = 'sent' AND sent_at < :cutoff LIMIT :batch)
""")

DELETE_CANCELLED_OUTBOX = text("""
DELETE FROM outbox WHERE id IN (
    SELECT id FROM outbox WHERE status = 'cancelled' AND created_at < :cutoff LIMIT :batch)
""")

DELETE_INBOX = text("""
DELETE FROM inbox WHERE (consumer, event_id) IN (
    SELECT consumer, event_id FROM inbox WHERE received_at < :cutoff LIMIT :batch)
""")


DELETE_DEAD_LETTERS = text("""
DELETE FROM dead_letters WHERE id IN (
    SELECT id FROM dead_letters
    WHERE resolved_at < :cutoff OR created_at < :open_cutoff
    LIMIT :batch)
""")


@dataclass
class Pruned:
    jobs: int = 0
    outbox: int = 0
    inbox: int = 0
    dead_letters: int = 0


async def delete_jobs(session: AsyncSession, job_ids: Sequence[uuid.UUID]) -> int:
    """Roll the jobs' usage and bills up, then delete them and their processes, in the
    caller's transaction."""
    if not job_ids:
        return 0
    await session.execute(ROLL_UP, {"ids": list(job_ids)})
    await session.execute(BILL_UP, {"ids": list(job_ids)})
    result = await session.execute(DELETE_JOBS, {"ids": list(job_ids)})
    return result.rowcount


async def _batch(sessions: async_sessionmaker[AsyncSession], statement, params) -> int:
    async with sessions() as session, session.begin():
        return (await session.execute(statement, params)).rowcount


async def _jobs_batch(sessions: async_sessionmaker[AsyncSession], params) -> int:
    async with sessions() as session, session.begin():
        ids = list(await session.scalars(FINISHED_JOBS, params))
        return await delete_jobs(session, ids)


async def _batches(run, *, batch: int, max_batches: int) -> int:
    """Run ``run`` (one batch, returning its count) until a batch is short or
    ``max_batches`` ran; the total."""
    total = 0
    for _ in range(max_batches):
        count = await run()
        total += count
        if count < batch:
            break
    return total


async def prune(sessions: async_sessionmaker[AsyncSession], *, older_than: timedelta,
                batch: int, max_batches: int, dead_letters_older_than: timedelta) -> Pruned:
    """One retention run: at most ``max_batches`` batches of each kind."""
    now = datetime.now(UTC)
    params = {"cutoff": now - older_than, "batch": batch}
    limits = {"batch": batch, "max_batches": max_batches}
    pruned = Pruned()
    pruned.jobs = await _batches(lambda: _jobs_batch(sessions, params), **limits)
    for statement in (DELETE_SENT_OUTBOX, DELETE_CANCELLED_OUTBOX):
        pruned.outbox += await _batches(lambda s=statement: _batch(sessions, s, params),
                                        **limits)
    pruned.inbox = await _batches(lambda: _batch(sessions, DELETE_INBOX, params), **limits)
    dead = {**params, "open_cutoff": now - dead_letters_older_than}
    pruned.dead_letters = await _batches(
        lambda: _batch(sessions, DELETE_DEAD_LETTERS, dead), **limits)
    return pruned


async def run_periodically(sessions: async_sessionmaker[AsyncSession], *, older_than: timedelta,
                           interval_s: float, batch: int, max_batches: int,
                           dead_letters_older_than: timedelta) -> None:
    """The lifespan's task: a run every ``interval_s`` (the first after one interval, so
    a start-up is never slowed), failures logged and retried at the next run."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            pruned = await prune(sessions, older_than=older_than, batch=batch,
                                 max_batches=max_batches,
                                 dead_letters_older_than=dead_letters_older_than)
            log.info("retention run", extra={"pruned_jobs": pruned.jobs,
                                             "pruned_outbox": pruned.outbox,
                                             "pruned_inbox": pruned.inbox,
                                             "pruned_dead_letters": pruned.dead_letters})
        except Exception:
            log.exception("retention run failed")
