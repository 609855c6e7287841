from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from stepline_control.schemas.jobs import ProcessPublic


class DeadLetterSummary(BaseModel):
    """A message nobody could act on, as the list shows it (without headers and body)."""

    id: int
    consumer: str = Field(description="the function (or trigger) that gave it up")
    event_id: str | None
    account_id: uuid.UUID | None
    job_id: uuid.UUID | None
    process_id: uuid.UUID | None
    origin: str = Field(description="where it was given up: `function`, `relay`, "
                        "`dead-letter-queue` (the broker's) or `api` (a Webhook call that "
                        "did not parse)")
    reason: str
    truncated: bool = Field(description="the stored body or a header was cut to its limit")
    retryable: bool = Field(description="it has a failed process to run again")
    created_at: datetime
    resolved_at: datetime | None


class DeadLetterPublic(DeadLetterSummary):
    headers: dict[str, Any] | None = Field(description="the event's attributes or the "
                                           "call's headers (never Authorization or Cookie)")
    body: str | None = Field(description="the body as received, at most 64 KiB of it")


class DeadLetterRetried(BaseModel):
    dead_letter: DeadLetterSummary
    process: ProcessPublic
