from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field

from stepline_control.schemas.common import FunctionName, Money, Price, Strict

# a registered function's endpoint: its URL (one machine) or its queue's name (cluster)
ENDPOINT_PATTERN = r"^(https?://[^\s]{1,490}|[A-Za-z0-9_][A-Za-z0-9_.:-]{0,254})$"


class Publisher(BaseModel):
    id: uuid.UUID
    name: str


class ServiceOffer(BaseModel):
    """What a caller needs of a published service: who sells it, what it takes, its
    price per call."""

    publisher: Publisher
    input_schema: dict[str, Any]
    price_per_call: Money


class FunctionPublic(BaseModel):
    name: str
    slug: str
    kind: str = Field(description="`action`, `trigger`, or `service` (a published workflow)")
    visibility: str
    account_id: uuid.UUID | None
    description: str
    config_schema: dict[str, Any]
    price_per_process: Money
    endpoint: str | None = Field(default=None, description="operators only: where the relay "
                                 "delivers a registered function (its URL or queue)")
    service: ServiceOffer | None = Field(default=None, description="set for kind `service`")


class FunctionRegister(Strict):
    """A function built outside this repository, made part of the catalog."""

    name: FunctionName
    kind: Literal["action", "trigger"]
    visibility: Literal["public", "private"]
    description: str = Field(default="", max_length=2000)
    config_schema: dict[str, Any] = Field(description="the JSON Schema every step's config "
                                          "is validated against")
    endpoint: str = Field(pattern=ENDPOINT_PATTERN, max_length=500,
                          description="the function's URL on one machine, or the name of "
                          "its queue in the cluster")
    price_per_process: Price = Decimal(0)


class FunctionUpdate(Strict):
    price_per_process: Price | None = None
    visibility: Literal["public", "private"] | None = None
