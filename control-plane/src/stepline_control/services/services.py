"""Services: an account publishes a workflow's current version as a service (public: to
every account; private: to its own steps only), re-pins a newer version, changes its
schema or price, and unpublishes it. Each live service has a catalog row (``functions``,
kind ``service``) whose name is unique among every function and service, whose config
schema lets a step pass the call's ``input``, and whose endpoint routes its messages to
``Service.call``. Calls themselves are the lifecycle's (:mod:`stepline.lifecycle.services`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stepline.catalog import SERVICE_CALL
from stepline.models import Function, Service, Workflow, WorkflowVersion
from stepline_control.auth import Principal
from stepline_control.pagination import paginate
from stepline_control.schemas.services import ServiceCreate, ServicePublic, ServiceUpdate
from stepline_control.services.errors import Conflict, Invalid, NotFound
from stepline_control.services.functions import invalid_schema


def config_schema(input_schema: dict[str, Any]) -> dict[str, Any]:
    """A step's config for a service: its ``input``, described by the service's own
    schema (the UI's form follows it). Definitions are checked against it; a templated
    value is checked when the call renders it."""
    return {"type": "object", "additionalProperties": False,
            "properties": {"input": {**input_schema, "description": "the call's input; "
                                     "default: the step's payload"}}}


def _invalid_schema(input_schema: dict[str, Any]) -> None:
    invalid_schema(input_schema, "input_schema")


async def _workflow(session: AsyncSession, principal: Principal, workflow_id: uuid.UUID
                    ) -> Workflow:
    workflow = await session.scalar(select(Workflow).where(
        Workflow.id == workflow_id, Workflow.account_id == principal.account_id,
        Workflow.deleted_at.is_(None)))
    if workflow is None:
        raise Invalid("no such workflow", [{"field": "workflow_id",
                                            "message": "no such workflow in this account"}])
    return workflow


def _catalog_row(service: Service) -> Function:
    return Function(name=service.name, slug=f"service-{service.id.hex}", kind="service",
                    visibility=service.visibility, account_id=service.account_id,
                    description=service.description or "",
                    config_schema=config_schema(service.input_schema), endpoint=SERVICE_CALL)


async def publish(session: AsyncSession, *, principal: Principal, body: ServiceCreate
                  ) -> ServicePublic:
    _invalid_schema(body.input_schema)
    workflow = await _workflow(session, principal, body.workflow_id)
    service = Service(id=uuid.uuid4(), account_id=principal.account_id, workflow_id=workflow.id,
                      name=body.name, visibility=body.visibility, description=body.description,
                      input_schema=body.input_schema, price_per_call=body.price_per_call,
                      version=workflow.current_version)
    session.add_all([service, _catalog_row(service)])
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict(f"the name {body.name!r} is taken by another function or service",
                       "name_taken") from exc
    return await public(session, service)


async def get_service(session: AsyncSession, *, principal: Principal,
                      service_id: uuid.UUID, lock: bool = False) -> Service:
    """A live service of the principal's account."""
    query = select(Service).where(Service.id == service_id,
                                  Service.account_id == principal.account_id,
                                  Service.unpublished_at.is_(None))
    service = await session.scalar(query.with_for_update() if lock else query)
    if service is None:
        raise NotFound("service")
    return service


async def list_services(session: AsyncSession, *, principal: Principal, limit: int,
                        cursor: str | None) -> tuple[list[ServicePublic], str | None]:
    """The account's live services, by name."""
    query = select(Service).where(Service.account_id == principal.account_id,
                                  Service.unpublished_at.is_(None))
    rows, next_cursor = await paginate(session, query, keys=(Service.name, Service.id),
                                       limit=limit, cursor=cursor)
    return [await public(session, service) for service in rows], next_cursor


async def change(session: AsyncSession, *, principal: Principal, service_id: uuid.UUID,
                 body: ServiceUpdate) -> ServicePublic:
    """Calls already started keep their version and price; the next ones take these."""
    service = await get_service(session, principal=principal, service_id=service_id, lock=True)
    given = body.model_dump(exclude_unset=True)
    if body.input_schema is not None:
        _invalid_schema(body.input_schema)
    if body.version is not None:
        await _existing_version(session, service.workflow_id, body.version)
    for field in ("visibility", "description", "input_schema", "price_per_call", "version"):
        if field in given and (given[field] is not None or field == "description"):
            setattr(service, field, getattr(body, field))
    service.updated_at = datetime.now(UTC)
    catalog = _catalog_row(service)
    await session.execute(update(Function).where(Function.name == service.name).values(
        visibility=catalog.visibility, description=catalog.description,
        config_schema=catalog.config_schema, updated_at=service.updated_at))
    await session.commit()
    return await public(session, service)


async def _existing_version(session: AsyncSession, workflow_id: uuid.UUID, number: int) -> None:
    found = await session.scalar(select(WorkflowVersion.id).where(
        WorkflowVersion.workflow_id == workflow_id, WorkflowVersion.version == number))
    if found is None:
        raise Invalid(f"the workflow has no version {number}",
                      [{"field": "version", "message": f"the workflow has no version {number}"}])


async def unpublish(session: AsyncSession, *, principal: Principal, service_id: uuid.UUID
                    ) -> None:
    """Later calls fail with a clear error; calls already running finish."""
    service = await get_service(session, principal=principal, service_id=service_id, lock=True)
    await _unpublish(session, [service])
    await session.commit()


async def unpublish_workflow(session: AsyncSession, workflow_id: uuid.UUID) -> None:
    """A deleted workflow's services go with it, in the caller's transaction."""
    rows = await session.scalars(select(Service).where(Service.workflow_id == workflow_id,
                                                       Service.unpublished_at.is_(None)))
    await _unpublish(session, list(rows))


async def _unpublish(session: AsyncSession, services: list[Service]) -> None:
    now = datetime.now(UTC)
    for service in services:
        service.unpublished_at = now
    if services:
        await session.execute(delete(Function).where(
            Function.name.in_([s.name for s in services]), Function.kind == "service"))


async def public(session: AsyncSession, service: Service) -> ServicePublic:
    current = await session.scalar(select(Workflow.current_version)
                                   .where(Workflow.id == service.workflow_id))
    return ServicePublic.model_validate(
        {**{c: getattr(service, c) for c in ServicePublic.model_fields if c != "workflow_version"},
         "workflow_version": current or service.version})
