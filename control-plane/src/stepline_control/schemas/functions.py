from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel


class FunctionPublic(BaseModel):
    name: str
    slug: str
    kind: str
    visibility: str
    account_id: uuid.UUID | None
    description: str
    config_schema: dict[str, Any]
