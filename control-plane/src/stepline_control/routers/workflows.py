from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import PlainTextResponse

from stepline_control.deps import (
    MetricsDep,
    OperatorWriterDep,
    PrincipalDep,
    SchedulesChangedDep,
    SessionDep,
    VersionsDep,
    WriterDep,
)
from stepline_control.pagination import CursorQuery, LimitQuery
from stepline_control.schemas.common import BlockRequest, Page
from stepline_control.schemas.jobs import JobPublic, JobStart
from stepline_control.schemas.workflows import (
    VersionPublic,
    WorkflowCreate,
    WorkflowPublic,
    WorkflowReplace,
    WorkflowSummary,
)
from stepline_control.services import accounts, jobs, workflows

router = APIRouter(prefix="/v1/workflows", tags=["workflows"])


@router.post("", status_code=201)
async def create_workflow(body: WorkflowCreate, session: SessionDep, principal: WriterDep,
                          schedules_changed: SchedulesChangedDep) -> WorkflowPublic:
    """Validated as a whole first: every problem is one 422 detail naming step and field."""
    workflow = await workflows.create_workflow(session, principal=principal, body=body,
                                               schedules_changed=schedules_changed)
    return await workflows.public(session, workflow)


@router.get("")
async def list_workflows(session: SessionDep, principal: PrincipalDep,
                         project_id: uuid.UUID | None = None, limit: LimitQuery = 50,
                         cursor: CursorQuery = None) -> Page[WorkflowSummary]:
    items, next_cursor = await workflows.list_workflows(
        session, principal=principal, project_id=project_id, limit=limit, cursor=cursor)
    return Page[WorkflowSummary](items=items, next_cursor=next_cursor)


@router.get("/{workflow_id}")
async def get_workflow(workflow_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
                       ) -> WorkflowPublic:
    workflow = await workflows.get_workflow(session, principal=principal, workflow_id=workflow_id)
    return await workflows.public(session, workflow)


@router.put("/{workflow_id}")
async def replace_workflow(workflow_id: uuid.UUID, body: WorkflowReplace, session: SessionDep,
                           principal: WriterDep, schedules_changed: SchedulesChangedDep
                           ) -> WorkflowPublic:
    """The full definition: a new immutable version; running jobs keep theirs."""
    workflow = await workflows.replace_workflow(session, principal=principal,
                                                workflow_id=workflow_id, body=body,
                                                schedules_changed=schedules_changed)
    return await workflows.public(session, workflow)


@router.delete("/{workflow_id}", status_code=204)
async def delete_workflow(workflow_id: uuid.UUID, session: SessionDep, principal: WriterDep,
                          schedules_changed: SchedulesChangedDep) -> Response:
    await workflows.delete_workflow(session, principal=principal, workflow_id=workflow_id,
                                    schedules_changed=schedules_changed)
    return Response(status_code=204)


@router.get("/{workflow_id}/versions")
async def list_versions(workflow_id: uuid.UUID, session: SessionDep, principal: PrincipalDep,
                        limit: LimitQuery = 50, cursor: CursorQuery = None
                        ) -> Page[VersionPublic]:
    items, next_cursor = await workflows.list_versions(
        session, principal=principal, workflow_id=workflow_id, limit=limit, cursor=cursor)
    return Page[VersionPublic](items=items, next_cursor=next_cursor)


@router.get("/{workflow_id}/versions/{version}")
async def get_version(workflow_id: uuid.UUID, version: int, session: SessionDep,
                      principal: PrincipalDep) -> VersionPublic:
    return workflows.version_public(await workflows.get_version(
        session, principal=principal, workflow_id=workflow_id, number=version))


@router.post("/{workflow_id}/pause")
async def pause_workflow(workflow_id: uuid.UUID, session: SessionDep, principal: WriterDep,
                         schedules_changed: SchedulesChangedDep) -> WorkflowPublic:
    workflow = await workflows.set_paused(session, principal=principal,
                                          workflow_id=workflow_id, paused=True,
                                          schedules_changed=schedules_changed)
    return await workflows.public(session, workflow)


@router.post("/{workflow_id}/resume")
async def resume_workflow(workflow_id: uuid.UUID, session: SessionDep, principal: WriterDep,
                          schedules_changed: SchedulesChangedDep) -> WorkflowPublic:
    workflow = await workflows.set_paused(session, principal=principal,
                                          workflow_id=workflow_id, paused=False,
                                          schedules_changed=schedules_changed)
    return await workflows.public(session, workflow)


@router.post("/{workflow_id}/block")
async def block_workflow(workflow_id: uuid.UUID, session: SessionDep, _: OperatorWriterDep,
                         schedules_changed: SchedulesChangedDep,
                         body: BlockRequest | None = None) -> WorkflowSummary:
    """Operators: any account's workflow; its starts are refused until unblocked."""
    workflow = await accounts.set_workflow_blocked(
        session, workflow_id=workflow_id, blocked=True, reason=body.reason if body else None,
        schedules_changed=schedules_changed)
    return await workflows.summary_of(session, workflow)


@router.post("/{workflow_id}/unblock")
async def unblock_workflow(workflow_id: uuid.UUID, session: SessionDep, _: OperatorWriterDep,
                           schedules_changed: SchedulesChangedDep) -> WorkflowSummary:
    workflow = await accounts.set_workflow_blocked(
        session, workflow_id=workflow_id, blocked=False, reason=None,
        schedules_changed=schedules_changed)
    return await workflows.summary_of(session, workflow)


@router.get("/{workflow_id}/diagram", response_class=PlainTextResponse,
            responses={200: {"content": {"text/plain": {}},
                             "description": "a Mermaid flowchart"}})
async def workflow_diagram(workflow_id: uuid.UUID, session: SessionDep, principal: PrincipalDep,
                           version: Annotated[int | None, Query(ge=1)] = None) -> str:
    return await workflows.mermaid(session, principal=principal, workflow_id=workflow_id,
                                   number=version)


@router.post("/{workflow_id}/jobs", status_code=201)
async def start_job(workflow_id: uuid.UUID, body: JobStart, session: SessionDep,
                    principal: WriterDep, metrics: MetricsDep, versions: VersionsDep
                    ) -> JobPublic:
    """A manual start at the entry step: 403 if the account or workflow is blocked, 429
    over the monthly quota (both recorded in usage), 409 if paused."""
    started = await jobs.start_manual(session, principal=principal, workflow_id=workflow_id,
                                      payload=body.payload, metrics=metrics,
                                      versions=versions)
    if isinstance(started, JobPublic):
        return started
    job = await jobs.get_job(session, principal=principal, job_id=started)
    return await jobs.job_public(session, job)
