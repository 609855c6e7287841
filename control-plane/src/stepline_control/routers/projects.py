from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from stepline_control.deps import PrincipalDep, SessionDep, WriterDep
from stepline_control.pagination import CursorQuery, LimitQuery
from stepline_control.schemas.common import Page
from stepline_control.schemas.projects import ProjectCreate, ProjectPublic, ProjectUpdate
from stepline_control.services import projects

router = APIRouter(prefix="/v1/projects", tags=["projects"])


@router.post("", status_code=201)
async def create_project(body: ProjectCreate, session: SessionDep, principal: WriterDep
                         ) -> ProjectPublic:
    project = await projects.create_project(session, principal=principal, body=body)
    return projects.public(project)


@router.get("")
async def list_projects(session: SessionDep, principal: PrincipalDep, limit: LimitQuery = 50,
                        cursor: CursorQuery = None) -> Page[ProjectPublic]:
    items, next_cursor = await projects.list_projects(session, principal=principal,
                                                      limit=limit, cursor=cursor)
    return Page[ProjectPublic](items=items, next_cursor=next_cursor)


@router.get("/{project_id}")
async def get_project(project_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
                      ) -> ProjectPublic:
    return projects.public(
        await projects.get_project(session, principal=principal, project_id=project_id))


@router.patch("/{project_id}")
async def update_project(project_id: uuid.UUID, body: ProjectUpdate, session: SessionDep,
                         principal: WriterDep) -> ProjectPublic:
    project = await projects.update_project(session, principal=principal,
                                            project_id=project_id, body=body)
    return projects.public(project)


@router.delete("/{project_id}", status_code=204)
async def delete_project(project_id: uuid.UUID, session: SessionDep, principal: WriterDep
                         ) -> Response:
    await projects.delete_project(session, principal=principal, project_id=project_id)
    return Response(status_code=204)
