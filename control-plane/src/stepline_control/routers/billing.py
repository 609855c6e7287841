from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from stepline_control.deps import PrincipalDep, SessionDep, SettingsDep
from stepline_control.schemas.billing import Statement
from stepline_control.services import accounts, billing

router = APIRouter(prefix="/v1/billing", tags=["billing"])

MONTH = r"^[0-9]{4}-(0[1-9]|1[0-2])$"


@router.get("", responses={200: {"content": {"text/csv": {}}}})
async def get_statement(
    session: SessionDep, principal: PrincipalDep, settings: SettingsDep,
    month: Annotated[str | None, Query(pattern=MONTH, description="YYYY-MM (UTC); default: "
                                       "this month")] = None,
    format: Annotated[Literal["json", "csv"], Query(description="`csv`: the lines, "
                                                    "as a download")] = "json",
    account_id: Annotated[uuid.UUID | None, Query(description="operators: another "
                                                  "account")] = None,
) -> Statement:
    """The account's statement for a month: one line per function or service it used
    (count, unit price, amount), its total, and the calls its own services served with
    what they earned. Amounts are exact decimal strings."""
    account = await accounts.get_account(session, principal=principal,
                                         account_id=account_id or principal.account_id)
    bill = await billing.statement(session, account_id=account.id, month=month,
                                   currency=settings.currency)
    if format == "csv":
        return Response(  # type: ignore[return-value]
            billing.as_csv(bill), media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition":
                     f'attachment; filename="stepline-billing-{bill.month}.csv"'})
    return bill
