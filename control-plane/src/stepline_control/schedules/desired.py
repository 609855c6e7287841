"""The desired state: one schedule per ``CronJob`` or ``Email`` step that is the entry of
the current version of a workflow that is not deleted — a CronJob step ticks on its cron
schedule, an Email step every ``every`` seconds to poll its mailbox (in a cluster a
PingSource ticks at most once a minute: :func:`email_cron`). Step ids are stable across
versions, so an edited workflow keeps its schedule object and only its fields change."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stepline.models import Account, Step, Workflow, WorkflowVersion

CRON_FUNCTION = "CronJob"
EMAIL_FUNCTION = "Email"
TICKED = (CRON_FUNCTION, EMAIL_FUNCTION)
DEFAULT_TIMEZONE = "UTC"
DEFAULT_EVERY_S = 60.0


@dataclass(frozen=True)
class DesiredSchedule:
    step_id: uuid.UUID
    workflow_id: uuid.UUID
    account_id: uuid.UUID
    schedule: str
    timezone: str
    # the workflow is paused or blocked, or its account is blocked: no ticks
    paused: bool
    function: str = CRON_FUNCTION  # the function the ticks go to
    every_s: float | None = None  # an Email step's poll interval (the local ticker's)


def email_cron(every_s: float) -> str:
    """The cron schedule a PingSource polls a mailbox on: every minute for an interval of
    a minute or less (its resolution), else every whole number of minutes (or hours)
    it rounds up to."""
    minutes = max(1, math.ceil(every_s / 60))
    if minutes == 1:
        return "* * * * *"
    if minutes < 60:
        return f"*/{minutes} * * * *"
    hours = math.ceil(minutes / 60)
    return f"0 */{hours} * * *" if hours < 24 else "0 0 * * *"


def from_row(row: Any) -> DesiredSchedule:
    config = row.config or {}
    paused = bool(row.paused or row.workflow_blocked or row.account_blocked)
    ids = {"step_id": row.step_id, "workflow_id": row.workflow_id, "account_id": row.account_id}
    if row.function == EMAIL_FUNCTION:
        every = config.get("every", DEFAULT_EVERY_S)
        every = float(every) if isinstance(every, int | float) else DEFAULT_EVERY_S
        return DesiredSchedule(**ids, schedule=email_cron(every), timezone=DEFAULT_TIMEZONE,
                               paused=paused, function=EMAIL_FUNCTION, every_s=every)
    return DesiredSchedule(**ids, schedule=str(config.get("schedule", "")).strip(),
                           timezone=config.get("timezone") or DEFAULT_TIMEZONE, paused=paused)


def desired_query() -> Any:
    return (
        select(
            Step.id.label("step_id"), Step.workflow_id, Workflow.account_id, Step.config,
            Step.function,
            Workflow.paused_at.is_not(None).label("paused"),
            Workflow.blocked_at.is_not(None).label("workflow_blocked"),
            Account.blocked_at.is_not(None).label("account_blocked"),
        )
        .join(WorkflowVersion, and_(WorkflowVersion.id == Step.workflow_version_id,
                                    WorkflowVersion.entry_step_key == Step.key))
        .join(Workflow, and_(Workflow.id == WorkflowVersion.workflow_id,
                             Workflow.current_version == WorkflowVersion.version))
        .join(Account, Account.id == Workflow.account_id)
        .where(Step.function.in_(TICKED), Workflow.deleted_at.is_(None))
        .order_by(Step.id)
    )


async def load_desired(sessions: async_sessionmaker[AsyncSession]) -> list[DesiredSchedule]:
    """Every schedule that should exist, paused ones included (each backend decides
    what a paused schedule looks like)."""
    async with sessions() as session:
        rows = (await session.execute(desired_query())).all()
    return [from_row(row) for row in rows]
