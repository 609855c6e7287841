"""Usage per account and day (jobs, processes, refused starts) and the admission of a
start: a blocked account or workflow is refused with 403, an account over its monthly
quota of processes with 429, each refusal counted in ``usage_daily.refused`` and logged
with its reason, in its own transaction (the refusal is recorded, nothing else is)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, literal_column, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from stepline import triggers
from stepline.models import Account, Job, Process, UsageDaily, Workflow
from stepline_control.errors import ApiError
from stepline_control.metrics import Metrics
from stepline_control.schemas.usage import UsageDay, UsagePublic, UsageTotals
from stepline_control.sessions import driver_connection

log = logging.getLogger(__name__)

MAX_RANGE_DAYS = 366

@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    message: str


async def month_processes(session: AsyncSession, account_id: uuid.UUID, *,
                          cap: int = 2**31 - 1) -> int:
    """The runtime's count, on the session's connection: triggers count the same way."""
    return await triggers.month_processes(await driver_connection(session), account_id,
                                          cap=cap)


async def refusal(session: AsyncSession, *, account_id: uuid.UUID, workflow: Workflow
                  ) -> Refusal | None:
    """Why a start of ``workflow`` must be refused now, or None."""
    account = await session.get(Account, account_id, populate_existing=True)
    if account is None or account.blocked_at is not None:
        reason = account.blocked_reason if account else None
        return Refusal(403, "account_blocked",
                       f"this account is blocked: no job can start ({reason or 'no reason given'})")
    if workflow.blocked_at is not None:
        return Refusal(403, "workflow_blocked", "this workflow is blocked by an operator "
                       f"({workflow.blocked_reason or 'no reason given'})")
    if account.monthly_quota is not None:
        used = await month_processes(session, account_id, cap=account.monthly_quota + 1)
        if used >= account.monthly_quota:
            return Refusal(429, "quota_exceeded",
                           f"the monthly quota of {account.monthly_quota} processes is reached")
    return None


async def record_refusal(session: AsyncSession, *, account_id: uuid.UUID,
                         workflow_id: uuid.UUID, refused: Refusal, metrics: Metrics) -> None:
    """Count the refusal for today, alone in its transaction."""
    await session.rollback()
    statement = insert(UsageDaily).values(account_id=account_id, day=datetime.now(UTC).date(),
                                          refused=1)
    await session.execute(statement.on_conflict_do_update(
        index_elements=[UsageDaily.account_id, UsageDaily.day],
        set_={"refused": UsageDaily.refused + 1}))
    await session.commit()
    metrics.starts_refused.labels(refused.code).inc()
    log.warning("start refused: %s", refused.message,
                extra={"reason": refused.code, "workflow_id": str(workflow_id)})


async def admit(session: AsyncSession, *, account_id: uuid.UUID, workflow: Workflow,
                metrics: Metrics) -> None:
    """Raise the refusal's ApiError (after recording it) if the start may not go on."""
    refused = await refusal(session, account_id=account_id, workflow=workflow)
    if refused is not None:
        await record_refusal(session, account_id=account_id, workflow_id=workflow.id,
                             refused=refused, metrics=metrics)
        raise ApiError(refused.status, refused.code, refused.message)


def _day(column):
    return func.date(func.timezone(literal_column("'UTC'"), column))


async def usage(session: AsyncSession, *, account: Account, start: date | None,
                end: date | None) -> UsagePublic:
    today = datetime.now(UTC).date()
    end = end or today
    start = start or end.replace(day=1)
    if start > end:
        raise ApiError(422, "invalid", "`from` is after `to`",
                       [{"field": "from", "message": "must not be after `to`"}])
    if (end - start).days >= MAX_RANGE_DAYS:
        raise ApiError(422, "invalid", f"a range is at most {MAX_RANGE_DAYS} days",
                       [{"field": "to", "message": f"at most {MAX_RANGE_DAYS} days after `from`"}])
    lower = datetime.combine(start, time(), UTC)
    upper = datetime.combine(end + timedelta(days=1), time(), UTC)
    days: dict[date, UsageDay] = {}

    def at(day: date) -> UsageDay:
        return days.setdefault(day, UsageDay(day=day))

    for model, field in ((Job, "jobs"), (Process, "processes")):
        day = _day(model.created_at)
        rows = await session.execute(
            select(day, func.count())
            .where(model.account_id == account.id, model.created_at >= lower,
                   model.created_at < upper)
            .group_by(day))
        for day, count in rows:
            setattr(at(day), field, getattr(at(day), field) + count)
    rolled = await session.scalars(
        select(UsageDaily).where(UsageDaily.account_id == account.id,
                                 UsageDaily.day >= start, UsageDaily.day <= end))
    for row in rolled:
        entry = at(row.day)
        entry.jobs += row.jobs
        entry.processes += row.processes
        entry.refused += row.refused
    ordered = [days[d] for d in sorted(days)]
    totals = UsageTotals(jobs=sum(d.jobs for d in ordered),
                         processes=sum(d.processes for d in ordered),
                         refused=sum(d.refused for d in ordered))
    return UsagePublic(account_id=account.id, from_=start, to=end, days=ordered, totals=totals,
                       monthly_quota=account.monthly_quota,
                       month_processes=await month_processes(session, account.id))
