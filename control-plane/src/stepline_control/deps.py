"""Typed dependencies of the routers: the session, the principal, write access."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from stepline.lifecycle import Versions
from stepline_control import logs, schedules, sources
from stepline_control.auth import Principal, resolve, touch
from stepline_control.config import ControlSettings
from stepline_control.errors import ApiError
from stepline_control.metrics import Metrics

_bearer = HTTPBearer(auto_error=False)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_settings(request: Request) -> ControlSettings:
    return request.app.state.settings


SettingsDep = Annotated[ControlSettings, Depends(get_settings)]


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


MetricsDep = Annotated[Metrics, Depends(get_metrics)]


async def get_versions(request: Request) -> Versions:
    return request.app.state.versions


VersionsDep = Annotated[Versions, Depends(get_versions)]


async def get_schedules_changed(request: Request) -> Callable[[], None]:
    """What a service calls after committing a change the schedules follow (a workflow's
    steps, pause or block; an account's block): they look at the database at once
    instead of at their next periodic pass; so do the Queue steps' sources."""
    def changed() -> None:
        schedules.poke(request.app.state)
        sources.poke(request.app.state)
    return changed


SchedulesChangedDep = Annotated[Callable[[], None], Depends(get_schedules_changed)]


BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def get_principal(session: SessionDep, credentials: BearerDep) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(401, "unauthorized", "a bearer token is required")
    principal = await resolve(session, credentials.credentials)
    if principal is None:
        raise ApiError(401, "unauthorized", "the token is not valid")
    logs.bind(account_id=principal.account_id, token_id=principal.token_id)
    await touch(session, principal)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_writer(principal: PrincipalDep) -> Principal:
    if not principal.can_write:
        raise ApiError(403, "forbidden", f"the {principal.role} role cannot change anything")
    return principal


WriterDep = Annotated[Principal, Depends(get_writer)]


async def get_admin(principal: PrincipalDep) -> Principal:
    if principal.role != "admin":
        raise ApiError(403, "forbidden", "only an admin token can manage tokens")
    return principal


AdminDep = Annotated[Principal, Depends(get_admin)]


async def get_operator(principal: PrincipalDep) -> Principal:
    if not principal.is_operator:
        raise ApiError(403, "forbidden", "only an operator account can do this")
    return principal


OperatorDep = Annotated[Principal, Depends(get_operator)]


async def get_operator_writer(principal: OperatorDep) -> Principal:
    return await get_writer(principal)


OperatorWriterDep = Annotated[Principal, Depends(get_operator_writer)]
