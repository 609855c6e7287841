"""API tokens of the caller's account: shown once at creation, stored hashed."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from stepline_control.deps import AdminDep, PrincipalDep, SessionDep
from stepline_control.pagination import CursorQuery, LimitQuery
from stepline_control.schemas.accounts import TokenCreate, TokenCreated, TokenPublic
from stepline_control.schemas.common import Page
from stepline_control.services import accounts

router = APIRouter(prefix="/v1/tokens", tags=["tokens"])


@router.post("", status_code=201)
async def create_token(body: TokenCreate, session: SessionDep, principal: AdminDep
                       ) -> TokenCreated:
    created = await accounts.create_token(session, principal=principal, body=body)
    return created


@router.get("")
async def list_tokens(session: SessionDep, principal: PrincipalDep, limit: LimitQuery = 50,
                      cursor: CursorQuery = None) -> Page[TokenPublic]:
    items, next_cursor = await accounts.list_tokens(session, principal=principal, limit=limit,
                                                    cursor=cursor)
    return Page[TokenPublic](items=items, next_cursor=next_cursor)


@router.delete("/{token_id}", status_code=204)
async def revoke_token(token_id: uuid.UUID, session: SessionDep, principal: AdminDep
                       ) -> Response:
    await accounts.revoke_token(session, principal=principal, token_id=token_id)
    return Response(status_code=204)
