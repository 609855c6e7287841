from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from stepline_control.deps import PrincipalDep, SessionDep, SettingsDep, WriterDep
from stepline_control.pagination import CursorQuery, LimitQuery
from stepline_control.schemas.common import Page
from stepline_control.schemas.connections import ConnectionCreate, ConnectionPublic
from stepline_control.services import connections

router = APIRouter(prefix="/v1/connections", tags=["connections"])


@router.post("", status_code=201)
async def create_connection(body: ConnectionCreate, session: SessionDep, principal: WriterDep,
                            settings: SettingsDep) -> ConnectionPublic:
    connection = await connections.create_connection(
        session, principal=principal, body=body, secret_key=settings.secret_key)
    return connections.public(connection)


@router.get("")
async def list_connections(session: SessionDep, principal: PrincipalDep, limit: LimitQuery = 50,
                           cursor: CursorQuery = None) -> Page[ConnectionPublic]:
    items, next_cursor = await connections.list_connections(
        session, principal=principal, limit=limit, cursor=cursor)
    return Page[ConnectionPublic](items=items, next_cursor=next_cursor)


@router.get("/{connection_id}")
async def get_connection(connection_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
                         ) -> ConnectionPublic:
    return connections.public(await connections.get_connection(
        session, principal=principal, connection_id=connection_id))


@router.delete("/{connection_id}", status_code=204)
async def delete_connection(connection_id: uuid.UUID, session: SessionDep, principal: WriterDep
                            ) -> Response:
    await connections.delete_connection(session, principal=principal,
                                        connection_id=connection_id)
    return Response(status_code=204)
