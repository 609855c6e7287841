from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from stepline_control.schemas.common import Description, Name, Strict


class WorkflowCreate(Strict):
    project_id: uuid.UUID
    name: Name
    description: Description = None
    automation_type: str = Field(default="step", pattern="^step$")
    # validated as a whole by stepline_control.validation, so every problem is reported
    steps: Any = Field(json_schema_extra={"type": "array", "items": {"type": "object"}})


class WorkflowReplace(Strict):
    name: Name
    description: Description = None
    automation_type: str = Field(default="step", pattern="^step$")
    steps: Any = Field(json_schema_extra={"type": "array", "items": {"type": "object"}})


class StepPublic(BaseModel):
    id: uuid.UUID
    key: str
    name: str | None
    function: str
    config: dict[str, Any]
    next: str | None
    output: str | None
    retry: dict[str, Any] | None


class StepDetail(StepPublic):
    """One step as ``GET /v1/steps/{id}`` shows it: in the newest version that has it."""

    workflow_id: uuid.UUID
    version: int
    is_entry: bool


class WorkflowSummary(BaseModel):
    id: uuid.UUID
    project_id: uuid.UUID
    name: str
    description: str | None
    automation_type: str
    version: int
    paused: bool
    blocked: bool
    blocked_reason: str | None
    created_at: datetime
    updated_at: datetime | None


class WorkflowPublic(WorkflowSummary):
    entry_step: str
    steps: list[StepPublic]


class VersionPublic(BaseModel):
    version: int
    entry_step: str
    created_at: datetime
    created_by: uuid.UUID | None
    definition: dict[str, Any]
