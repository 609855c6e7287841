from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from stepline_control.schemas.common import Name, Strict

Role = Literal["admin", "editor", "viewer"]


class AccountCreate(Strict):
    name: Name
    monthly_quota: int | None = Field(
        default=None, ge=0, description="processes per calendar month (UTC); none: unlimited")
    is_operator: bool = Field(default=False, description="an operator account (it manages "
                              "every account): an operator admin token only")


class AccountUpdate(Strict):
    """Only the fields sent change; ``monthly_quota: null`` removes the quota."""

    name: Name | None = None
    monthly_quota: int | None = Field(default=None, ge=0)


class AccountPublic(BaseModel):
    id: uuid.UUID
    name: str
    is_operator: bool
    monthly_quota: int | None
    blocked: bool
    blocked_at: datetime | None
    blocked_reason: str | None
    created_at: datetime


class TokenCreate(Strict):
    name: Name
    role: Role
    account_id: uuid.UUID | None = Field(
        default=None, description="operators only: a token of another account")


class TokenPublic(BaseModel):
    id: uuid.UUID
    account_id: uuid.UUID
    name: str
    role: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenPublic):
    token: str = Field(description="shown once: only its hash is stored")


class AccountCreated(AccountPublic):
    admin_token: TokenCreated = Field(description="the account's first admin token, shown once")
