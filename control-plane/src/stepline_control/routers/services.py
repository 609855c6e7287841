from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from stepline_control.deps import PrincipalDep, SessionDep, WriterDep
from stepline_control.pagination import CursorQuery, LimitQuery
from stepline_control.schemas.common import Page
from stepline_control.schemas.services import ServiceCreate, ServicePublic, ServiceUpdate
from stepline_control.services import services

router = APIRouter(prefix="/v1/services", tags=["services"])


@router.post("", status_code=201)
async def publish_service(body: ServiceCreate, session: SessionDep, principal: WriterDep
                          ) -> ServicePublic:
    """Publish the workflow's current version as a service (409 when the name is taken
    by any function or service)."""
    return await services.publish(session, principal=principal, body=body)


@router.get("")
async def list_services(session: SessionDep, principal: PrincipalDep, limit: LimitQuery = 50,
                        cursor: CursorQuery = None) -> Page[ServicePublic]:
    """The services this account publishes (the ones it may call are in the catalog,
    `GET /v1/functions`, kind `service`)."""
    items, next_cursor = await services.list_services(session, principal=principal,
                                                      limit=limit, cursor=cursor)
    return Page[ServicePublic](items=items, next_cursor=next_cursor)


@router.get("/{service_id}")
async def get_service(service_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
                      ) -> ServicePublic:
    service = await services.get_service(session, principal=principal, service_id=service_id)
    return await services.public(session, service)


@router.patch("/{service_id}")
async def change_service(service_id: uuid.UUID, body: ServiceUpdate, session: SessionDep,
                         principal: WriterDep) -> ServicePublic:
    """`version` re-pins the service to another version of its workflow."""
    return await services.change(session, principal=principal, service_id=service_id,
                                 body=body)


@router.delete("/{service_id}", status_code=204)
async def unpublish_service(service_id: uuid.UUID, session: SessionDep, principal: WriterDep
                            ) -> Response:
    """Unpublish: later calls fail with a clear error, running ones finish."""
    await services.unpublish(session, principal=principal, service_id=service_id)
    return Response(status_code=204)
