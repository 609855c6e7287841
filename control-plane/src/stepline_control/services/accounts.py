"""Accounts (operators only, but for reading one's own) and API tokens."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from stepline import lifecycle
from stepline.models import Account, ApiToken, Workflow
from stepline_control.auth import Principal, issue_token
from stepline_control.pagination import paginate
from stepline_control.schemas.accounts import (
    AccountCreate,
    AccountCreated,
    AccountPublic,
    AccountUpdate,
    TokenCreate,
    TokenCreated,
    TokenPublic,
)
from stepline_control.services.errors import Invalid, NotFound
from stepline_control.sessions import driver_connection


def account_public(account: Account) -> AccountPublic:
    return AccountPublic(
        id=account.id, name=account.name, is_operator=account.is_operator,
        monthly_quota=account.monthly_quota, blocked=account.blocked_at is not None,
        blocked_at=account.blocked_at, blocked_reason=account.blocked_reason,
        created_at=account.created_at,
    )


def token_public(token: ApiToken) -> TokenPublic:
    return TokenPublic.model_validate(token, from_attributes=True)


async def create_account(session: AsyncSession, *, body: AccountCreate) -> AccountCreated:
    account = Account(name=body.name, monthly_quota=body.monthly_quota,
                      is_operator=body.is_operator)
    session.add(account)
    await session.flush()
    row, token = issue_token(account.id, name="first admin", role="admin")
    session.add(row)
    await session.flush()
    await session.commit()
    await session.refresh(account)
    await session.refresh(row)
    created = TokenCreated(**token_public(row).model_dump(), token=token)
    return AccountCreated(**account_public(account).model_dump(), admin_token=created)


async def list_accounts(session: AsyncSession, *, limit: int, cursor: str | None
                        ) -> tuple[list[AccountPublic], str | None]:
    rows, next_cursor = await paginate(session, select(Account),
                                       keys=(Account.created_at, Account.id),
                                       limit=limit, cursor=cursor)
    return [account_public(a) for a in rows], next_cursor


async def get_account(session: AsyncSession, *, principal: Principal, account_id: uuid.UUID
                      ) -> Account:
    """Operators see every account; anyone else only their own (another is a 404)."""
    if not principal.is_operator and account_id != principal.account_id:
        raise NotFound("account")
    account = await session.get(Account, account_id)
    if account is None:
        raise NotFound("account")
    return account


async def update_account(session: AsyncSession, *, principal: Principal,
                         account_id: uuid.UUID, body: AccountUpdate) -> Account:
    account = await get_account(session, principal=principal, account_id=account_id)
    if "name" in body.model_fields_set:
        if body.name is None:
            raise Invalid("name cannot be null",
                          [{"field": "name", "message": "cannot be null"}])
        account.name = body.name
    if "monthly_quota" in body.model_fields_set:
        account.monthly_quota = body.monthly_quota
        await session.flush()
        if body.monthly_quota is not None:  # from now on counted as processes are made
            await lifecycle.reset_quota(await driver_connection(session), account.id)
    await session.commit()
    return account


async def set_account_blocked(session: AsyncSession, *, principal: Principal,
                              account_id: uuid.UUID, blocked: bool, reason: str | None,
                              schedules_changed: Callable[[], None]) -> Account:
    account = await get_account(session, principal=principal, account_id=account_id)
    account.blocked_at = datetime.now(UTC) if blocked else None
    account.blocked_reason = (reason or "blocked by an operator") if blocked else None
    await session.commit()
    schedules_changed()
    return account


async def set_workflow_blocked(session: AsyncSession, *, workflow_id: uuid.UUID,
                               blocked: bool, reason: str | None,
                               schedules_changed: Callable[[], None]) -> Workflow:
    """Operators block any account's workflow: its starts are refused."""
    workflow = await session.scalar(
        select(Workflow).where(Workflow.id == workflow_id, Workflow.deleted_at.is_(None)))
    if workflow is None:
        raise NotFound("workflow")
    workflow.blocked_at = datetime.now(UTC) if blocked else None
    workflow.blocked_reason = (reason or "blocked by an operator") if blocked else None
    await session.commit()
    schedules_changed()
    return workflow


async def create_token(session: AsyncSession, *, principal: Principal, body: TokenCreate
                       ) -> TokenCreated:
    account_id = principal.account_id
    if body.account_id is not None and body.account_id != principal.account_id:
        if not principal.is_operator:
            raise NotFound("account")
        if await session.get(Account, body.account_id) is None:
            raise NotFound("account")
        account_id = body.account_id
    row, token = issue_token(account_id, name=body.name, role=body.role)
    session.add(row)
    await session.commit()
    await session.refresh(row)
    return TokenCreated(**token_public(row).model_dump(), token=token)


async def list_tokens(session: AsyncSession, *, principal: Principal, limit: int,
                      cursor: str | None) -> tuple[list[TokenPublic], str | None]:
    query = select(ApiToken).where(ApiToken.account_id == principal.account_id)
    rows, next_cursor = await paginate(session, query, keys=(ApiToken.created_at, ApiToken.id),
                                       limit=limit, cursor=cursor)
    return [token_public(t) for t in rows], next_cursor


async def revoke_token(session: AsyncSession, *, principal: Principal, token_id: uuid.UUID
                       ) -> None:
    result = await session.execute(
        update(ApiToken)
        .where(ApiToken.id == token_id, ApiToken.account_id == principal.account_id,
               ApiToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
        .returning(ApiToken.id)
    )
    if result.first() is None:
        raise NotFound("token")
    await session.commit()
