"""Jobs: manual starts (admitted first), reading and listing jobs with their counts
(and why one is stuck), their processes, cancelling a job and retrying a failed process.

An account reads only its own jobs; an operator reads every account's (to find the
stuck ones the metrics tell of). Changes (cancel, retry) stay within one's account."""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, not_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from stepline import forms, lifecycle
from stepline.errors import Rejected
from stepline.models import DeadLetter, Job, Process
from stepline.models.job import PROCESS_STATUSES
from stepline_control import logs
from stepline_control.auth import Principal
from stepline_control.metrics import Metrics
from stepline_control.pagination import paginate
from stepline_control.schemas.jobs import JobPublic, ProcessPublic, StuckPublic
from stepline_control.services.errors import Conflict, Invalid, NotFound, Refused
from stepline_control.sessions import work

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


async def start_manual(
    session: AsyncSession, *, principal: Principal, workflow_id: uuid.UUID, payload: Any,
    metrics: Metrics, versions: lifecycle.Versions,
) -> JobPublic | uuid.UUID:
    """The started job as its 201 shows it, or only its id when it may have ended at
    once (nothing sent on) and must be read back."""
    target = lifecycle.WorkflowTarget(workflow_id, principal.account_id)
    async with work(session) as unit:
        try:
            started = await lifecycle.start(unit, versions, target, payload=payload,
                                            trigger="manual", check=forms.check)
        except lifecycle.NotStartable as exc:
            raise NotFound("workflow") from exc
        except Rejected as exc:  # the Manual step's form
            raise Invalid(str(exc), exc.problems, code="invalid_payload") from exc
        except lifecycle.StartRefused as exc:
            raise Invalid(str(exc), [{"field": "payload", "message": str(exc)}],
                          code="invalid_payload") from exc
    if isinstance(started, lifecycle.Refusal):
        raise Refused(started)
    metrics.jobs_started.labels("manual").inc()
    logs.bind(workflow_id=workflow_id, job_id=started.job_id)
    log.info("job started", extra={"trigger": "manual"})
    if not started.sent or started.created_at is None:
        return started.job_id
    # running, as the start's own statement wrote it: no need to read it back
    counts = dict.fromkeys(PROCESS_STATUSES, 0)
    counts |= {"succeeded": started.entry_done, "pending": started.sent,
               "total": started.entry_done + started.sent}
    return JobPublic(id=started.job_id, account_id=principal.account_id,
                     workflow_id=workflow_id, version=started.version,
                     status="running", trigger="manual", counts=counts,
                     created_at=started.created_at, finished_at=None)


def _readable(query: Select, principal: Principal) -> Select:
    """Jobs the principal may read: its account's; an operator's, every account's."""
    return query if principal.is_operator else query.where(Job.account_id == principal.account_id)


async def get_job(session: AsyncSession, *, principal: Principal, job_id: uuid.UUID,
                  lock: bool = False) -> Job:
    """A job of the principal's account (to change it)."""
    query = select(Job).where(Job.id == job_id, Job.account_id == principal.account_id)
    job = await session.scalar(query.with_for_update() if lock else query)
    if job is None:
        raise NotFound("job")
    return job


async def read_job(session: AsyncSession, *, principal: Principal, job_id: uuid.UUID) -> Job:
    """A job the principal may read (an operator: of any account)."""
    job = await session.scalar(_readable(select(Job).where(Job.id == job_id), principal))
    if job is None:
        raise NotFound("job")
    return job


async def _counts(session: AsyncSession, job_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict]:
    counts: dict[uuid.UUID, dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(PROCESS_STATUSES, 0))
    if job_ids:
        rows = await session.execute(
            select(Process.job_id, Process.status, func.count())
            .where(Process.job_id.in_(job_ids)).group_by(Process.job_id, Process.status))
        for job_id, status, n in rows:
            counts[job_id][status] = n
    return {job_id: {**counts[job_id], "total": sum(counts[job_id].values())}
            for job_id in job_ids}


def _stuck_now() -> ColumnElement[bool]:
    """What the watchdog recorded, while it still holds: an ended job is not stuck,
    even before the next check clears the record."""
    return and_(Job.stuck_since.is_not(None), Job.status == "running")


def _stuck(job: Job) -> StuckPublic | None:
    if job.status != "running" or job.stuck_since is None or not job.stuck_reason:
        return None
    return StuckPublic.model_validate({**job.stuck_reason, "since": job.stuck_since})


def _public(job: Job, counts: dict[str, int]) -> JobPublic:
    return JobPublic(id=job.id, account_id=job.account_id, workflow_id=job.workflow_id,
                     version=job.version, status=job.status, trigger=job.trigger,
                     counts=counts, error=job.error, created_at=job.created_at,
                     finished_at=job.finished_at, stuck=_stuck(job), service_id=job.service_id,
                     caller_account_id=job.caller_account_id)


async def job_public(session: AsyncSession, job: Job) -> JobPublic:
    return _public(job, (await _counts(session, [job.id]))[job.id])


async def list_jobs(
    session: AsyncSession, *, principal: Principal, workflow_id: uuid.UUID | None,
    status: str | None, since: datetime | None, until: datetime | None, limit: int,
    cursor: str | None, stuck: bool | None = None, account_id: uuid.UUID | None = None,
) -> tuple[list[JobPublic], str | None]:
    """Newest first."""
    query = _readable(select(Job), principal)
    if account_id is not None:
        query = query.where(Job.account_id == account_id)
    if stuck is not None:
        query = query.where(_stuck_now() if stuck else not_(_stuck_now()))
    if workflow_id is not None:
        query = query.where(Job.workflow_id == workflow_id)
    if status is not None:
        query = query.where(Job.status == status)
    if since is not None:
        query = query.where(Job.created_at >= since)
    if until is not None:
        query = query.where(Job.created_at < until)
    rows, next_cursor = await paginate(session, query, keys=(Job.created_at, Job.id),
                                       limit=limit, cursor=cursor, descending=True)
    counts = await _counts(session, [j.id for j in rows])
    return [_public(j, counts[j.id]) for j in rows], next_cursor


async def list_processes(
    session: AsyncSession, *, principal: Principal, job_id: uuid.UUID,
    limit: int = DEFAULT_LIMIT, cursor: str | None = None,
) -> tuple[list[ProcessPublic], str | None]:
    job = await read_job(session, principal=principal, job_id=job_id)
    query = select(Process).where(Process.job_id == job.id)
    rows, next_cursor = await paginate(session, query, keys=(Process.created_at, Process.id),
                                       limit=limit, cursor=cursor)
    return [ProcessPublic.model_validate(p, from_attributes=True) for p in rows], next_cursor


async def cancel_job(session: AsyncSession, *, principal: Principal, job_id: uuid.UUID,
                     metrics: Metrics) -> Job:
    job = await get_job(session, principal=principal, job_id=job_id)
    async with work(session) as unit:
        if not await lifecycle.cancel(unit.conn, job.id):
            raise Conflict(f"the job has already ended ({job.status})", "job_ended")
    await session.refresh(job)
    metrics.jobs_cancelled.inc()
    logs.bind(job_id=job.id)
    log.info("job cancelled")
    return job


async def retry_process(session: AsyncSession, *, principal: Principal, process_id: uuid.UUID,
                        metrics: Metrics) -> Process:
    """Run a failed process again with its recorded input, in one transaction: the
    process back to pending (attempts start over), its job running again if it had
    ended, its dead letter resolved, and a fresh message in the outbox — if admission
    lets the account's work go on (a refusal is recorded and nothing else is)."""
    async with work(session) as unit:
        process, job = await _failed_process(session, principal=principal,
                                             process_id=process_id)
        try:
            refused = await lifecycle.admission(
                unit, lifecycle.WorkflowTarget(job.workflow_id, principal.account_id))
        except lifecycle.NotStartable as exc:
            raise Conflict("the job's workflow was deleted", "workflow_deleted") from exc
        if refused is None:
            await _run_again(session, unit, process=process, job=job, principal=principal)
    if refused is not None:
        raise Refused(refused)
    metrics.processes_retried.inc()
    logs.bind(job_id=job.id, process_id=process.id)
    log.info("process retried")
    return process


async def _failed_process(session: AsyncSession, *, principal: Principal,
                          process_id: uuid.UUID) -> tuple[Process, Job]:
    """The failed process and its job, locked for the change."""
    process = await session.scalar(
        select(Process).where(Process.id == process_id,
                              Process.account_id == principal.account_id).with_for_update())
    if process is None:
        raise NotFound("process")
    job = await get_job(session, principal=principal, job_id=process.job_id, lock=True)
    if process.status != "failed":
        raise Conflict(f"only a failed process can be retried, this one is {process.status}",
                       "process_not_failed")
    if job.status == "cancelled":
        raise Conflict("the job was cancelled", "job_cancelled")
    return process, job


async def _run_again(session: AsyncSession, unit: lifecycle.Unit, *, process: Process,
                     job: Job, principal: Principal) -> None:
    now = datetime.now(UTC)
    note = {"at": now.isoformat(), "level": "info",
            "message": f"retried through the API (token {principal.token_id})"}
    process.status, process.attempt, process.error = "pending", 0, None
    process.output, process.started_at, process.finished_at = None, None, None
    process.logs = [*(process.logs or []), note]
    if job.status != "running":
        job.status, job.finished_at = "running", None
    await session.execute(
        update(DeadLetter).where(DeadLetter.process_id == process.id,
                                 DeadLetter.resolved_at.is_(None)).values(resolved_at=now))
    await session.flush()
    await lifecycle.redeliver(unit.conn, process.id)
