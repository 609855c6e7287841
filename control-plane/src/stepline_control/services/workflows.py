"""Workflows and their immutable versions: create, read, replace (a new version whose
steps keep their ids per key), list, soft delete, pause and resume, the diagram, one
step."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from stepline.models import Project, Step, Workflow, WorkflowVersion
from stepline_control import diagram
from stepline_control.auth import Principal
from stepline_control.pagination import paginate
from stepline_control.schemas.workflows import (
    StepDetail,
    StepPublic,
    TriggerHealthPublic,
    VersionPublic,
    WorkflowCreate,
    WorkflowPublic,
    WorkflowReplace,
    WorkflowSummary,
)
from stepline_control.services import triggers
from stepline_control.services.errors import Invalid, NotFound
from stepline_control.services.functions import visible_functions
from stepline_control.services.services import unpublish_workflow
from stepline_control.validation import Problem, validate_bounded


async def _definition_or_422(session: AsyncSession, raw_steps, principal: Principal,
                             extra: list[Problem] | None = None):
    functions = await visible_functions(session, principal=principal)
    steps, entry, problems = await validate_bounded(raw_steps, functions=functions,
                                                    is_operator=principal.is_operator)
    problems = [*(extra or []), *problems]
    if problems:
        raise Invalid(f"the workflow definition has {len(problems)} problem(s)",
                      [p.as_dict() for p in problems], code="invalid_definition")
    return steps, entry


async def get_workflow(session: AsyncSession, *, principal: Principal, workflow_id: uuid.UUID
                       ) -> Workflow:
    workflow = await session.scalar(
        select(Workflow).where(Workflow.id == workflow_id,
                               Workflow.account_id == principal.account_id,
                               Workflow.deleted_at.is_(None))
    )
    if workflow is None:
        raise NotFound("workflow")
    return workflow


async def create_workflow(
    session: AsyncSession, *, principal: Principal, body: WorkflowCreate,
    schedules_changed: Callable[[], None],
) -> Workflow:
    project = await session.scalar(
        select(Project).where(Project.id == body.project_id,
                              Project.account_id == principal.account_id)
    )
    missing = [] if project else [Problem(None, "project_id", "no such project")]
    steps, entry = await _definition_or_422(session, body.steps, principal, missing)
    workflow = Workflow(account_id=principal.account_id, project_id=project.id, name=body.name,
                        description=body.description, current_version=1)
    session.add(workflow)
    await session.flush()
    await _add_version(session, workflow=workflow, number=1, raw=body.model_dump(mode="json"),
                       steps=steps, entry=entry, principal=principal, step_ids={})
    await session.commit()
    schedules_changed()
    await session.refresh(workflow)
    return workflow


async def replace_workflow(
    session: AsyncSession, *, principal: Principal, workflow_id: uuid.UUID,
    body: WorkflowReplace, schedules_changed: Callable[[], None],
) -> Workflow:
    workflow = await get_workflow(session, principal=principal, workflow_id=workflow_id)
    steps, entry = await _definition_or_422(session, body.steps, principal)
    # lock the workflow row so two concurrent PUTs make two successive versions
    await session.refresh(workflow, with_for_update=True)
    current = await _version(session, workflow.id, workflow.current_version)
    step_ids = {s.key: s.id for s in await _steps(session, current.id)}
    workflow.current_version += 1
    workflow.name, workflow.description = body.name, body.description
    workflow.updated_at = datetime.now(UTC)
    raw = {"project_id": str(workflow.project_id), **body.model_dump(mode="json")}
    await _add_version(session, workflow=workflow, number=workflow.current_version, raw=raw,
                       steps=steps, entry=entry, principal=principal, step_ids=step_ids)
    await session.commit()
    schedules_changed()
    return workflow


async def _add_version(session, *, workflow, number, raw, steps, entry, principal, step_ids):
    version = WorkflowVersion(workflow_id=workflow.id, version=number, definition=raw,
                              entry_step_key=entry, created_by=principal.token_id)
    session.add(version)
    await session.flush()
    for position, step in enumerate(steps):
        session.add(Step(
            workflow_version_id=version.id, id=step_ids.get(step.key, uuid.uuid4()),
            workflow_id=workflow.id, key=step.key, name=step.name, function=step.function,
            config=step.config, next_key=step.next, output=step.output,
            retry=step.retry.model_dump(), position=position,
        ))
    await session.flush()


async def list_workflows(session: AsyncSession, *, principal: Principal,
                         project_id: uuid.UUID | None, limit: int, cursor: str | None
                         ) -> tuple[list[WorkflowSummary], str | None]:
    query = select(Workflow).where(Workflow.account_id == principal.account_id,
                                   Workflow.deleted_at.is_(None))
    if project_id is not None:
        query = query.where(Workflow.project_id == project_id)
    rows, next_cursor = await paginate(session, query, keys=(Workflow.created_at, Workflow.id),
                                       limit=limit, cursor=cursor, descending=True)
    health = await triggers.of_workflows(session, account_id=principal.account_id,
                                         workflow_ids=[w.id for w in rows])
    return [summary(w, health.get(w.id)) for w in rows], next_cursor


async def delete_workflow(session: AsyncSession, *, principal: Principal,
                          workflow_id: uuid.UUID, schedules_changed: Callable[[], None]) -> None:
    """Soft: the workflow disappears from the API and starts no job; its versions and
    jobs stay for the jobs' history and usage. Its services are unpublished with it."""
    workflow = await get_workflow(session, principal=principal, workflow_id=workflow_id)
    workflow.deleted_at = datetime.now(UTC)
    await unpublish_workflow(session, workflow.id)
    await session.commit()
    schedules_changed()


async def set_paused(session: AsyncSession, *, principal: Principal, workflow_id: uuid.UUID,
                     paused: bool, schedules_changed: Callable[[], None]) -> Workflow:
    workflow = await get_workflow(session, principal=principal, workflow_id=workflow_id)
    if paused and workflow.paused_at is None:
        workflow.paused_at = datetime.now(UTC)
    elif not paused:
        workflow.paused_at = None
    await session.commit()
    schedules_changed()
    return workflow


async def _version(session: AsyncSession, workflow_id: uuid.UUID, number: int
                   ) -> WorkflowVersion | None:
    return await session.scalar(
        select(WorkflowVersion).where(WorkflowVersion.workflow_id == workflow_id,
                                      WorkflowVersion.version == number)
    )


async def _steps(session: AsyncSession, version_id: uuid.UUID) -> list[Step]:
    result = await session.scalars(
        select(Step).where(Step.workflow_version_id == version_id).order_by(Step.position)
    )
    return list(result)


def version_public(version: WorkflowVersion) -> VersionPublic:
    return VersionPublic(version=version.version, entry_step=version.entry_step_key,
                         created_at=version.created_at, created_by=version.created_by,
                         definition=version.definition)


async def list_versions(session: AsyncSession, *, principal: Principal, workflow_id: uuid.UUID,
                        limit: int, cursor: str | None) -> tuple[list[VersionPublic], str | None]:
    workflow = await get_workflow(session, principal=principal, workflow_id=workflow_id)
    query = select(WorkflowVersion).where(WorkflowVersion.workflow_id == workflow.id)
    rows, next_cursor = await paginate(session, query, keys=(WorkflowVersion.version,),
                                       limit=limit, cursor=cursor, descending=True)
    return [version_public(v) for v in rows], next_cursor


async def get_version(session: AsyncSession, *, principal: Principal, workflow_id: uuid.UUID,
                      number: int) -> WorkflowVersion:
    workflow = await get_workflow(session, principal=principal, workflow_id=workflow_id)
    version = await _version(session, workflow.id, number)
    if version is None:
        raise NotFound("version")
    return version


async def mermaid(session: AsyncSession, *, principal: Principal, workflow_id: uuid.UUID,
                  number: int | None) -> str:
    workflow = await get_workflow(session, principal=principal, workflow_id=workflow_id)
    version = await get_version(session, principal=principal, workflow_id=workflow.id,
                                number=number or workflow.current_version)
    steps = await _steps(session, version.id)
    return diagram.flowchart([(s, s.next_key) for s in steps])


def step_public(s: Step) -> StepPublic:
    return StepPublic(id=s.id, key=s.key, name=s.name, function=s.function, config=s.config,
                      next=s.next_key, output=s.output, retry=s.retry)


HTTP_TRIGGERS = frozenset({"Webhook", "Sms"})


async def get_step(session: AsyncSession, *, principal: Principal, step_id: uuid.UUID,
                   base_url: str) -> StepDetail:
    """A step as it is in the newest version of its (live) workflow that has it; a
    trigger called over HTTP with its URL under ``base_url``, a trigger with a source of
    its own with its health."""
    row = (await session.execute(
        select(Step, WorkflowVersion)
        .join(WorkflowVersion, WorkflowVersion.id == Step.workflow_version_id)
        .join(Workflow, Workflow.id == Step.workflow_id)
        .where(Step.id == step_id, Workflow.account_id == principal.account_id,
               Workflow.deleted_at.is_(None))
        .order_by(WorkflowVersion.version.desc()).limit(1)
    )).first()
    if row is None:
        raise NotFound("step")
    step, version = row
    url = (f"{base_url.rstrip('/')}/v1/hooks/{step.id}"
           if step.function in HTTP_TRIGGERS else None)
    health = await triggers.of_step(session, principal=principal, step_id=step.id)
    return StepDetail(**step_public(step).model_dump(), workflow_id=step.workflow_id,
                      version=version.version, is_entry=version.entry_step_key == step.key,
                      url=url, health=health)


def summary(workflow: Workflow, trigger_health: TriggerHealthPublic | None = None
            ) -> WorkflowSummary:
    return WorkflowSummary(
        id=workflow.id, project_id=workflow.project_id, name=workflow.name,
        description=workflow.description, automation_type=workflow.automation_type,
        version=workflow.current_version, paused=workflow.paused_at is not None,
        blocked=workflow.blocked_at is not None, blocked_reason=workflow.blocked_reason,
        created_at=workflow.created_at, updated_at=workflow.updated_at,
        trigger_health=trigger_health,
    )


async def summary_of(session: AsyncSession, workflow: Workflow) -> WorkflowSummary:
    """The summary with its entry trigger's health."""
    health = await triggers.of_workflows(session, account_id=workflow.account_id,
                                         workflow_ids=[workflow.id])
    return summary(workflow, health.get(workflow.id))


async def public(session: AsyncSession, workflow: Workflow) -> WorkflowPublic:
    version = await _version(session, workflow.id, workflow.current_version)
    steps = await _steps(session, version.id)
    head = await summary_of(session, workflow)
    return WorkflowPublic(**head.model_dump(), entry_step=version.entry_step_key,
                          steps=[step_public(s) for s in steps])
