"""The functions catalog: the built-in catalog is written to the ``functions`` table at
start-up; operators register functions built outside this repository and set prices and
visibility; published services sit in the same table (kind ``service``). An account
sees the public functions and its own private ones, operators see every one."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stepline import payload_schema
from stepline.catalog import CATALOG
from stepline.models import Account, Function, Service
from stepline_control.auth import Principal
from stepline_control.schemas.functions import (
    FunctionPublic,
    FunctionRegister,
    FunctionUpdate,
    Publisher,
    ServiceOffer,
)
from stepline_control.services.errors import Conflict, Invalid, NotFound
from stepline_control.validation import FunctionInfo

# what the code says of a built-in; its visibility and price are the operator's to set
SEEDED = ("slug", "kind", "account_id", "description", "config_schema")
SLUG_MAX = 63


async def seed(session: AsyncSession) -> None:
    """Upsert every built-in function (several control planes may start at once). An
    operator's visibility and price are kept across restarts."""
    rows = [
        {"name": spec.name, "slug": spec.slug, "kind": spec.kind, "visibility": spec.visibility,
         "account_id": None, "description": spec.description,
         "config_schema": spec.config_schema}
        for spec in CATALOG.values()
    ]
    statement = insert(Function).values(rows)
    await session.execute(statement.on_conflict_do_update(
        index_elements=[Function.name],
        set_={column: statement.excluded[column] for column in SEEDED}
        | {"updated_at": func.now()},
    ))


def _visible(principal: Principal):
    query = select(Function)
    if not principal.is_operator:
        query = query.where(or_(Function.visibility == "public",
                                Function.account_id == principal.account_id))
    return query


async def list_functions(session: AsyncSession, *, principal: Principal) -> list[FunctionPublic]:
    """The catalog, each service with who publishes it, its input schema and price."""
    query = (_visible(principal).add_columns(Service, Account)
             .outerjoin(Service, and_(Service.name == Function.name,
                                      Service.unpublished_at.is_(None)))
             .outerjoin(Account, Account.id == Service.account_id)
             .order_by(Function.name))
    return [_public(row.Function, row.Service, row.Account, principal)
            for row in await session.execute(query)]


def _public(function: Function, service: Service | None, publisher: Account | None,
            principal: Principal) -> FunctionPublic:
    offer = None
    if service is not None and publisher is not None:
        offer = ServiceOffer(publisher=Publisher(id=publisher.id, name=publisher.name),
                             input_schema=service.input_schema,
                             price_per_call=service.price_per_call)
    public = FunctionPublic.model_validate(function, from_attributes=True)
    return public.model_copy(update={"service": offer,
                                     "endpoint": public.endpoint if principal.is_operator
                                     else None})


async def visible_functions(session: AsyncSession, *, principal: Principal
                            ) -> dict[str, FunctionInfo]:
    """What definition validation may use for this account."""
    rows = await session.scalars(_visible(principal))
    return {f.name: FunctionInfo(f.name, f.kind, f.config_schema) for f in rows}


def invalid_schema(schema: dict[str, Any], field: str) -> None:
    """An :class:`Invalid` naming each problem of a JSON Schema a tenant or an operator
    wrote (valid 2020-12, its patterns compiling on RE2), or nothing."""
    problems = payload_schema.schema_problems(schema, field)
    if problems:
        raise Invalid(f"{field} is not a usable JSON Schema",
                      [{"field": where, "message": message} for where, message in problems])


def slug_of(name: str) -> str:
    """The DNS label a registered function's Knative Service and RabbitmqSource are
    named by (``GoogleAnalytics.getPages`` -> ``googleanalytics-getpages``)."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:SLUG_MAX].rstrip("-")


async def register(session: AsyncSession, *, body: FunctionRegister) -> FunctionPublic:
    """A function built outside this repository joins the catalog: steps use it, their
    config is validated against its schema, the relay delivers to its endpoint."""
    invalid_schema(body.config_schema, "config_schema")
    function = Function(name=body.name, slug=slug_of(body.name), kind=body.kind,
                        visibility=body.visibility, account_id=None,
                        description=body.description, config_schema=body.config_schema,
                        price_per_process=body.price_per_process, endpoint=body.endpoint)
    session.add(function)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict(f"the name {body.name!r} (or its slug {function.slug!r}) is taken",
                       "name_taken") from exc
    return FunctionPublic.model_validate(function, from_attributes=True)


async def update(session: AsyncSession, *, name: str, body: FunctionUpdate) -> FunctionPublic:
    """An operator's price and visibility; a process already created keeps its price."""
    function = await session.scalar(select(Function).where(Function.name == name)
                                    .with_for_update())
    if function is None:
        raise NotFound("function")
    if function.kind == "service":
        raise Conflict(f"{name} is a published service: its publisher changes it with "
                       "PATCH /v1/services/{id}", "is_a_service")
    if body.price_per_process is not None:
        function.price_per_process = body.price_per_process
    if body.visibility is not None:
        function.visibility = body.visibility
    function.updated_at = func.now()
    await session.commit()
    await session.refresh(function)
    return FunctionPublic.model_validate(function, from_attributes=True)
