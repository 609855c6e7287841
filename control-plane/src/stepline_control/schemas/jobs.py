from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from stepline_control.schemas.common import Page, Strict

__all__ = ["JobPublic", "JobStart", "Page", "ProcessPublic"]


class JobStart(Strict):
    payload: Any = None


class JobPublic(BaseModel):
    id: uuid.UUID
    workflow_id: uuid.UUID
    version: int
    status: str
    trigger: str
    counts: dict[str, int]
    error: str | None = None
    created_at: datetime
    finished_at: datetime | None


class ProcessPublic(BaseModel):
    id: uuid.UUID
    job_id: uuid.UUID
    step_id: uuid.UUID
    step_key: str
    function: str
    status: str
    attempt: int
    input: Any
    output: Any
    error: Any
    logs: Any
    parent_id: uuid.UUID | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
