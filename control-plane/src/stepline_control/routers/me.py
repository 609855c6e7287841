"""``GET /v1/me``: who the bearer token is, so a client never has to guess it."""

from __future__ import annotations

from fastapi import APIRouter

from stepline_control.deps import PrincipalDep
from stepline_control.schemas.me import MePublic

router = APIRouter(prefix="/v1/me", tags=["accounts"])


@router.get("")
async def get_me(principal: PrincipalDep) -> MePublic:
    """The token's account (its id and name, whether it is an operator), its role, and
    the token's id and name. Any role may call it."""
    return MePublic(account_id=principal.account_id, account_name=principal.account_name,
                    role=principal.role, is_operator=principal.is_operator,
                    token_id=principal.token_id, token_name=principal.token_name)
