"""Projects: an account's groups of workflows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stepline.models import Job, Project, Workflow
from stepline_control.auth import Principal
from stepline_control.pagination import paginate
from stepline_control.schemas.projects import ProjectCreate, ProjectPublic, ProjectUpdate
from stepline_control.services.errors import Conflict, Invalid, NotFound
from stepline_control.services.retention import delete_jobs


def public(project: Project) -> ProjectPublic:
    return ProjectPublic.model_validate(project, from_attributes=True)


async def get_project(session: AsyncSession, *, principal: Principal, project_id: uuid.UUID
                      ) -> Project:
    project = await session.scalar(
        select(Project).where(Project.id == project_id,
                              Project.account_id == principal.account_id))
    if project is None:
        raise NotFound("project")
    return project


async def _flush_unique(session: AsyncSession, name: str) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict(f"a project named {name!r} exists") from exc


async def create_project(session: AsyncSession, *, principal: Principal, body: ProjectCreate
                         ) -> Project:
    project = Project(account_id=principal.account_id, name=body.name,
                      description=body.description)
    session.add(project)
    await _flush_unique(session, body.name)
    await session.commit()
    await session.refresh(project)
    return project


async def list_projects(session: AsyncSession, *, principal: Principal, limit: int,
                        cursor: str | None) -> tuple[list[ProjectPublic], str | None]:
    query = select(Project).where(Project.account_id == principal.account_id)
    rows, next_cursor = await paginate(session, query, keys=(Project.name, Project.id),
                                       limit=limit, cursor=cursor)
    return [public(p) for p in rows], next_cursor


async def update_project(session: AsyncSession, *, principal: Principal, project_id: uuid.UUID,
                         body: ProjectUpdate) -> Project:
    project = await get_project(session, principal=principal, project_id=project_id)
    if "name" in body.model_fields_set:
        if body.name is None:
            raise Invalid("name cannot be null",
                          [{"field": "name", "message": "cannot be null"}])
        project.name = body.name
    if "description" in body.model_fields_set:
        project.description = body.description
    project.updated_at = datetime.now(UTC)
    await _flush_unique(session, project.name)
    await session.commit()
    await session.refresh(project)
    return project


async def delete_project(session: AsyncSession, *, principal: Principal, project_id: uuid.UUID
                         ) -> None:
    """A project goes only once its workflows are deleted and none of their jobs runs;
    the jobs' usage is rolled up before they go with it."""
    project = await get_project(session, principal=principal, project_id=project_id)
    workflows = list(await session.scalars(
        select(Workflow).where(Workflow.project_id == project.id).with_for_update()))
    if any(w.deleted_at is None for w in workflows):
        raise Conflict("the project still has workflows: delete them first", "project_not_empty")
    ids = [w.id for w in workflows]
    jobs = list(await session.execute(
        select(Job.id, Job.status).where(Job.workflow_id.in_(ids)))) if ids else []
    if any(status == "running" for _, status in jobs):
        raise Conflict("a job of this project's workflows is still running", "jobs_running")
    await delete_jobs(session, [job_id for job_id, _ in jobs])
    await session.delete(project)
    await session.commit()
