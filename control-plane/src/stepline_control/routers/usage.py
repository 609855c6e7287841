from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from stepline_control.deps import PrincipalDep, SessionDep
from stepline_control.schemas.usage import UsagePublic
from stepline_control.services import accounts, usage

router = APIRouter(prefix="/v1/usage", tags=["usage"])


@router.get("")
async def get_usage(
    session: SessionDep, principal: PrincipalDep,
    start: Annotated[date | None, Query(alias="from", description="first day (UTC); "
                                        "default: the first of `to`'s month")] = None,
    end: Annotated[date | None, Query(alias="to", description="last day, included; "
                                      "default: today")] = None,
    account_id: Annotated[uuid.UUID | None, Query(description="operators: another "
                                                  "account")] = None,
) -> UsagePublic:
    """Jobs, processes and refused starts per day, pruned days included."""
    account = await accounts.get_account(session, principal=principal,
                                         account_id=account_id or principal.account_id)
    return await usage.usage(session, account=account, start=start, end=end)
