"""The desired state: one schedule per ``CronJob`` step that is the entry of the current
version of a workflow that is not deleted. Step ids are stable across versions, so an
edited workflow keeps its schedule object and only its fields change."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stepline.models import Account, Step, Workflow, WorkflowVersion

CRON_FUNCTION = "CronJob"
DEFAULT_TIMEZONE = "UTC"


@dataclass(frozen=True)
class DesiredSchedule:
    step_id: uuid.UUID
    workflow_id: uuid.UUID
    account_id: uuid.UUID
    schedule: str
    timezone: str
    # the workflow is paused or blocked, or its account is blocked: no ticks
    paused: bool


def from_row(row: Any) -> DesiredSchedule:
    config = row.config or {}
    return DesiredSchedule(
        step_id=row.step_id, workflow_id=row.workflow_id, account_id=row.account_id,
        schedule=str(config.get("schedule", "")).strip(),
        timezone=config.get("timezone") or DEFAULT_TIMEZONE,
        paused=bool(row.paused or row.workflow_blocked or row.account_blocked),
    )


def desired_query() -> Any:
    return (
        select(
            Step.id.label("step_id"), Step.workflow_id, Workflow.account_id, Step.config,
            Workflow.paused_at.is_not(None).label("paused"),
            Workflow.blocked_at.is_not(None).label("workflow_blocked"),
            Account.blocked_at.is_not(None).label("account_blocked"),
        )
        .join(WorkflowVersion, and_(WorkflowVersion.id == Step.workflow_version_id,
                                    WorkflowVersion.entry_step_key == Step.key))
        .join(Workflow, and_(Workflow.id == WorkflowVersion.workflow_id,
                             Workflow.current_version == WorkflowVersion.version))
        .join(Account, Account.id == Workflow.account_id)
        .where(Step.function == CRON_FUNCTION, Workflow.deleted_at.is_(None))
        .order_by(Step.id)
    )


async def load_desired(sessions: async_sessionmaker[AsyncSession]) -> list[DesiredSchedule]:
    """Every schedule that should exist, paused ones included (each backend decides
    what a paused schedule looks like)."""
    async with sessions() as session:
        rows = (await session.execute(desired_query())).all()
    return [from_row(row) for row in rows]
