"""The functions catalog: the built-in catalog is written to the ``functions`` table at
start-up; an account sees the public functions and its own private ones, operators see
every one."""

from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from stepline.catalog import CATALOG
from stepline.models import Function
from stepline_control.auth import Principal
from stepline_control.schemas.functions import FunctionPublic
from stepline_control.validation import FunctionInfo


async def seed(session: AsyncSession) -> None:
    """Upsert every built-in function (several control planes may start at once)."""
    rows = [
        {"name": spec.name, "slug": spec.slug, "kind": spec.kind, "visibility": spec.visibility,
         "account_id": None, "description": spec.description,
         "config_schema": spec.config_schema}
        for spec in CATALOG.values()
    ]
    statement = insert(Function).values(rows)
    await session.execute(statement.on_conflict_do_update(
        index_elements=[Function.name],
        set_={column: statement.excluded[column] for column in
              ("slug", "kind", "visibility", "account_id", "description", "config_schema")}
        | {"updated_at": func.now()},
    ))


def _visible(principal: Principal):
    query = select(Function)
    if not principal.is_operator:
        query = query.where(or_(Function.visibility == "public",
                                Function.account_id == principal.account_id))
    return query


async def list_functions(session: AsyncSession, *, principal: Principal) -> list[FunctionPublic]:
    rows = await session.scalars(_visible(principal).order_by(Function.name))
    return [FunctionPublic.model_validate(f, from_attributes=True) for f in rows]


async def visible_functions(session: AsyncSession, *, principal: Principal
                            ) -> dict[str, FunctionInfo]:
    """What definition validation may use for this account."""
    rows = await session.scalars(_visible(principal))
    return {f.name: FunctionInfo(f.name, f.kind, f.config_schema) for f in rows}
