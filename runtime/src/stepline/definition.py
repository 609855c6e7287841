"""A workflow definition: the one JSON document of the brief, steps referring to each
other by ``key``. Shared by the control plane (validation, storage) and the runtime
(the step a delivery runs)."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

STEP_KEY_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.?!-]{0,99}$"

DEFAULT_ATTEMPTS = 3
DEFAULT_BACKOFF_S = 1.0
DEFAULT_BACKOFF_FACTOR = 2.0
DEFAULT_MAX_BACKOFF_S = 300.0


class RetryPolicy(BaseModel):
    """How often a step is tried on temporary failures, and how long between tries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    attempts: int = Field(default=DEFAULT_ATTEMPTS, ge=1, le=50)
    backoff_s: float = Field(default=DEFAULT_BACKOFF_S, ge=0, le=3600)
    factor: float = Field(default=DEFAULT_BACKOFF_FACTOR, ge=1, le=10)
    max_backoff_s: float = Field(default=DEFAULT_MAX_BACKOFF_S, ge=0, le=86400)

    def delay_s(self, attempt: int) -> float:
        """The wait before attempt ``attempt + 1`` after attempt ``attempt`` failed."""
        return min(self.backoff_s * self.factor ** (attempt - 1), self.max_backoff_s)


class StepDefinition(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(pattern=STEP_KEY_PATTERN)
    name: str | None = Field(default=None, max_length=200)
    function: str = Field(max_length=100)
    config: dict[str, Any] = Field(default_factory=dict)
    next: str | None = None
    output: Literal["single", "multiple"] | None = "single"
    retry: RetryPolicy = Field(default_factory=RetryPolicy)


class Step(BaseModel):
    """A stored step of one immutable workflow version, as the runtime reads it."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    workflow_id: uuid.UUID
    key: str
    name: str | None
    function: str
    config: dict[str, Any]
    next_key: str | None
    output: Literal["single", "multiple"] | None
    retry: RetryPolicy


class Version(BaseModel):
    """The steps of one immutable workflow version, by key and by id."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    number: int
    entry_key: str
    steps: dict[str, Step]

    def by_id(self, step_id: uuid.UUID) -> Step | None:
        return next((s for s in self.steps.values() if s.id == step_id), None)
