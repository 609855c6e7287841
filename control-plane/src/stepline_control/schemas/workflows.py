from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

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


class TriggerHealthPublic(BaseModel):
    """How a trigger that reaches a source of its own (Queue, Email, Sms) is: ``connected``
    (its last try reached the source), ``failing`` (since ``since``, with the last
    ``error``; also when its consumer stopped reporting) or ``idle`` (paused or blocked,
    or nothing to report yet); when it last brought an event, and what became of its
    events: a job ``started``, a ``duplicate`` of an event seen before, or a dead letter."""

    state: Literal["connected", "failing", "idle"]
    error: str | None = None
    since: datetime | None = None
    checked_at: datetime | None = None
    last_event_at: datetime | None = None
    started: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    unacked: int | None = Field(default=None, description="a queue's messages in hand")


class StepDetail(StepPublic):
    """One step as ``GET /v1/steps/{id}`` shows it: in the newest version that has it;
    a trigger step with a source of its own with its ``health``, a step called over HTTP
    (Webhook, Sms) with its ``url``."""

    workflow_id: uuid.UUID
    version: int
    is_entry: bool
    url: str | None = None
    health: TriggerHealthPublic | None = None


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
    trigger_health: TriggerHealthPublic | None = Field(
        default=None, description="its entry trigger's health (Queue, Email, Sms)")


class WorkflowPublic(WorkflowSummary):
    entry_step: str
    steps: list[StepPublic]


class VersionPublic(BaseModel):
    version: int
    entry_step: str
    created_at: datetime
    created_by: uuid.UUID | None
    definition: dict[str, Any]
