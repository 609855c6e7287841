"""Connections: the secret part sealed with the platform's key before it is stored,
never returned and never logged."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stepline.errors import ConfigurationError
from stepline.models import Connection
from stepline.secrets import SecretBox
from stepline_control.auth import Principal
from stepline_control.pagination import paginate
from stepline_control.schemas.connections import AnyConnectionCreate, ConnectionPublic
from stepline_control.services.errors import Conflict, NotFound, Unavailable

log = logging.getLogger(__name__)


def public(c: Connection) -> ConnectionPublic:
    return ConnectionPublic(id=c.id, name=c.name, kind=c.kind, config=c.config,
                            has_secret=c.secret is not None, created_at=c.created_at)


def _seal(secret: dict | None, key: str | None) -> bytes | None:
    if not secret:
        return None
    try:
        return SecretBox(key).seal(secret)
    except ConfigurationError as exc:
        raise Unavailable("this platform has no secret key: connections with a secret "
                          "cannot be stored", "secrets_unavailable") from exc


async def create_connection(
    session: AsyncSession, *, principal: Principal,
    body: AnyConnectionCreate, secret_key: str | None,
) -> Connection:
    secret = body.secret.model_dump(exclude_none=True) if body.secret else None
    connection = Connection(account_id=principal.account_id, name=body.name, kind=body.kind,
                            config=body.config.model_dump(exclude_none=True),
                            secret=_seal(secret, secret_key))
    session.add(connection)
    try:
        await session.flush()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict(f"a connection named {body.name!r} exists") from exc
    await session.commit()
    await session.refresh(connection)
    log.info("connection created", extra={"connection": connection.name,
                                          "kind": connection.kind})
    return connection


async def get_connection(session: AsyncSession, *, principal: Principal,
                         connection_id: uuid.UUID) -> Connection:
    connection = await session.scalar(
        select(Connection).where(Connection.id == connection_id,
                                 Connection.account_id == principal.account_id))
    if connection is None:
        raise NotFound("connection")
    return connection


async def list_connections(session: AsyncSession, *, principal: Principal, limit: int,
                           cursor: str | None) -> tuple[list[ConnectionPublic], str | None]:
    query = select(Connection).where(Connection.account_id == principal.account_id)
    rows, next_cursor = await paginate(session, query, keys=(Connection.name, Connection.id),
                                       limit=limit, cursor=cursor)
    return [public(c) for c in rows], next_cursor


async def delete_connection(session: AsyncSession, *, principal: Principal,
                            connection_id: uuid.UUID) -> None:
    result = await session.execute(
        delete(Connection)
        .where(Connection.id == connection_id, Connection.account_id == principal.account_id)
        .returning(Connection.id))
    if result.first() is None:
        raise NotFound("connection")
    await session.commit()
