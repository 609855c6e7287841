from __future__ import annotations

import uuid
from datetime import date

from pydantic import BaseModel, Field


class UsageDay(BaseModel):
    day: date
    jobs: int = 0
    processes: int = 0
    refused: int = Field(default=0, description="starts refused: blocked or over quota")


class UsageTotals(BaseModel):
    jobs: int = 0
    processes: int = 0
    refused: int = 0


class UsagePublic(BaseModel):
    account_id: uuid.UUID
    from_: date = Field(serialization_alias="from")
    to: date
    days: list[UsageDay]
    totals: UsageTotals
    monthly_quota: int | None
    month_processes: int = Field(description="processes counted against this month's quota")
