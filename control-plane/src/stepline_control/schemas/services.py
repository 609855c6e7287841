from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field

from stepline_control.schemas.common import Description, FunctionName, Money, Price, Strict


class ServiceCreate(Strict):
    """Publish a workflow's current version as a service."""

    workflow_id: uuid.UUID
    name: FunctionName
    visibility: Literal["public", "private"]
    description: Description = None
    input_schema: dict[str, Any] = Field(default_factory=dict, description="the JSON Schema "
                                         "every call's input must satisfy")
    price_per_call: Price = Decimal(0)


class ServiceUpdate(Strict):
    """Change a service; ``version`` pins another version of its workflow."""

    visibility: Literal["public", "private"] | None = None
    description: Description = None
    input_schema: dict[str, Any] | None = None
    price_per_call: Price | None = None
    version: int | None = Field(default=None, ge=1, description="the workflow version calls "
                                "run from now on (running calls finish on theirs)")


class ServicePublic(BaseModel):
    id: uuid.UUID
    account_id: uuid.UUID
    workflow_id: uuid.UUID
    name: str
    visibility: str
    description: str | None
    input_schema: dict[str, Any]
    price_per_call: Money
    version: int = Field(description="the pinned workflow version every call runs")
    workflow_version: int = Field(description="the workflow's current version: newer than "
                                  "`version` when there is something to pin")
    created_at: datetime
    updated_at: datetime | None
