from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from stepline_control.schemas.common import Page, Strict

__all__ = ["JobPublic", "JobStart", "Page", "ProcessPublic", "StuckProcess", "StuckPublic"]


class JobStart(Strict):
    payload: Any = None


class StuckProcess(BaseModel):
    """The outstanding process a stuck job waits for (its oldest one)."""

    id: uuid.UUID
    step_id: uuid.UUID
    step_key: str
    function: str
    status: str
    attempt: int
    created_at: datetime
    started_at: datetime | None


class StuckPublic(BaseModel):
    """Why a running job has made no progress for longer than the watchdog's bound."""

    since: datetime = Field(description="the job's last progress seen: a process created, "
                            "started or finished, a message written or falling due (for a "
                            "waiting parent, its child job's too)")
    detected_at: datetime
    message: str
    waiting_on: Literal["delivery", "function", "child_job"] = Field(
        description="`delivery`: its message is not delivered; `function`: delivered, "
        "never finished; `child_job`: a Workflow.call waiting for a child job stuck too")
    process: StuckProcess
    last_error: str | None
    error_source: Literal["outbox", "dead_letter", "process"] | None
    child_job_id: uuid.UUID | None
    outstanding_processes: int


class JobPublic(BaseModel):
    id: uuid.UUID
    account_id: uuid.UUID
    workflow_id: uuid.UUID
    version: int
    status: str
    trigger: str
    counts: dict[str, int]
    error: str | None = None
    created_at: datetime
    finished_at: datetime | None
    stuck: StuckPublic | None = Field(default=None, description="set while the job is "
                                      "stuck (see the watchdog), null otherwise")
    service_id: uuid.UUID | None = Field(default=None, description="a call of one of this "
                                         "account's services: the service")
    caller_account_id: uuid.UUID | None = Field(default=None, description="a service call: "
                                                "the account that called it")


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
