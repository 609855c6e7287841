from __future__ import annotations

import uuid

from pydantic import BaseModel, Field

from stepline_control.schemas.common import Money


class StatementLine(BaseModel):
    function: str = Field(description="the function, or the service called")
    kind: str = Field(description="`action`, `trigger` or `service`")
    count: int = Field(description="processes of the function, or calls of the service")
    unit_price: Money
    amount: Money


class ServedLine(BaseModel):
    service: str
    calls: int
    unit_price: Money
    revenue: Money


class Statement(BaseModel):
    """An account's month: what it used and owes, and what its services earned."""

    account_id: uuid.UUID
    month: str = Field(examples=["2026-12"])
    currency: str
    lines: list[StatementLine]
    total: Money
    served: list[ServedLine]
    revenue: Money
