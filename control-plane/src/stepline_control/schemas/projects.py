from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel

from stepline_control.schemas.common import Description, Name, Strict


class ProjectCreate(Strict):
    name: Name
    description: Description = None


class ProjectUpdate(Strict):
    """Only the fields sent change."""

    name: Name | None = None
    description: Description = None


class ProjectPublic(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime | None
