"""Accounts: operators create, list, change, block and unblock them; any account reads
its own."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from stepline_control.deps import (
    OperatorDep,
    OperatorWriterDep,
    PrincipalDep,
    SchedulesChangedDep,
    SessionDep,
)
from stepline_control.errors import ApiError
from stepline_control.pagination import CursorQuery, LimitQuery
from stepline_control.schemas.accounts import (
    AccountCreate,
    AccountCreated,
    AccountPublic,
    AccountUpdate,
)
from stepline_control.schemas.common import BlockRequest, Page
from stepline_control.services import accounts

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])


@router.post("", status_code=201)
async def create_account(body: AccountCreate, session: SessionDep,
                         principal: OperatorWriterDep) -> AccountCreated:
    """An operator's editor or admin creates a tenant; only an operator's admin creates
    an operator account (`is_operator: true`). Whether an account is an operator is
    fixed here: no later change makes one."""
    if body.is_operator and principal.role != "admin":
        # its first admin token can do everything to every account
        raise ApiError(403, "forbidden", "only an admin token of an operator account can "
                       "create an operator account")
    created = await accounts.create_account(session, body=body)
    return created


@router.get("")
async def list_accounts(session: SessionDep, _: OperatorDep, limit: LimitQuery = 50,
                        cursor: CursorQuery = None) -> Page[AccountPublic]:
    items, next_cursor = await accounts.list_accounts(session, limit=limit, cursor=cursor)
    return Page[AccountPublic](items=items, next_cursor=next_cursor)


@router.get("/{account_id}")
async def get_account(account_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
                      ) -> AccountPublic:
    account = await accounts.get_account(session, principal=principal, account_id=account_id)
    return accounts.account_public(account)


@router.patch("/{account_id}")
async def update_account(account_id: uuid.UUID, body: AccountUpdate, session: SessionDep,
                         principal: OperatorWriterDep) -> AccountPublic:
    account = await accounts.update_account(session, principal=principal,
                                            account_id=account_id, body=body)
    return accounts.account_public(account)


@router.post("/{account_id}/block")
async def block_account(account_id: uuid.UUID, session: SessionDep,
                        principal: OperatorWriterDep, schedules_changed: SchedulesChangedDep,
                        body: BlockRequest | None = None) -> AccountPublic:
    account = await accounts.set_account_blocked(
        session, principal=principal, account_id=account_id, blocked=True,
        reason=body.reason if body else None, schedules_changed=schedules_changed)
    return accounts.account_public(account)


@router.post("/{account_id}/unblock")
async def unblock_account(account_id: uuid.UUID, session: SessionDep,
                          principal: OperatorWriterDep, schedules_changed: SchedulesChangedDep
                          ) -> AccountPublic:
    account = await accounts.set_account_blocked(
        session, principal=principal, account_id=account_id, blocked=False, reason=None,
        schedules_changed=schedules_changed)
    return accounts.account_public(account)
