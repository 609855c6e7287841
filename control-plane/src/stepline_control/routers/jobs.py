from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from stepline_control.deps import MetricsDep, PrincipalDep, SessionDep, WriterDep
from stepline_control.pagination import CursorQuery, LimitQuery
from stepline_control.schemas.jobs import JobPublic, Page, ProcessPublic
from stepline_control.services import jobs

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

JobStatus = Literal["running", "succeeded", "failed", "cancelled"]


@router.get("")
async def list_jobs(
    session: SessionDep, principal: PrincipalDep,
    workflow_id: uuid.UUID | None = None, status: JobStatus | None = None,
    since: Annotated[datetime | None, Query(alias="from",
                                            description="created at or after")] = None,
    until: Annotated[datetime | None, Query(alias="to", description="created before")] = None,
    stuck: Annotated[bool | None, Query(description="true: only the running jobs the "
                                        "watchdog found stuck; false: the others")] = None,
    account_id: Annotated[uuid.UUID | None, Query(description="operators: one account's "
                                                  "jobs (an operator reads every account's)")
                          ] = None,
    limit: LimitQuery = 50, cursor: CursorQuery = None,
) -> Page[JobPublic]:
    """Newest first, with each job's process counts and, while it is stuck, why."""
    items, next_cursor = await jobs.list_jobs(
        session, principal=principal, workflow_id=workflow_id, status=status,
        since=_aware(since), until=_aware(until), limit=limit, cursor=cursor, stuck=stuck,
        account_id=account_id)
    return Page[JobPublic](items=items, next_cursor=next_cursor)


def _aware(moment: datetime | None) -> datetime | None:
    """A time without an offset is UTC."""
    return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment


@router.get("/{job_id}")
async def get_job(job_id: uuid.UUID, session: SessionDep, principal: PrincipalDep) -> JobPublic:
    job = await jobs.read_job(session, principal=principal, job_id=job_id)
    return await jobs.job_public(session, job)


@router.get("/{job_id}/processes")
async def list_processes(
    job_id: uuid.UUID, session: SessionDep, principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=jobs.MAX_LIMIT)] = jobs.DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[ProcessPublic]:
    items, next_cursor = await jobs.list_processes(
        session, principal=principal, job_id=job_id, limit=limit, cursor=cursor
    )
    return Page[ProcessPublic](items=items, next_cursor=next_cursor)


@router.post("/{job_id}/cancel")
async def cancel_job(job_id: uuid.UUID, session: SessionDep, principal: WriterDep,
                     metrics: MetricsDep) -> JobPublic:
    """Stops the job's pending messages from running; 409 if it has already ended."""
    job = await jobs.cancel_job(session, principal=principal, job_id=job_id, metrics=metrics)
    return await jobs.job_public(session, job)
