from __future__ import annotations

import uuid

from pydantic import BaseModel, Field


class MePublic(BaseModel):
    """The caller as its bearer token makes it: what the UI shows and allows."""

    account_id: uuid.UUID
    account_name: str
    role: str = Field(description="`admin`, `editor` or `viewer`")
    is_operator: bool = Field(description="the account is an operator's")
    token_id: uuid.UUID
    token_name: str
