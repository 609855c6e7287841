"""Usage per account and day: jobs, processes, and starts refused (admission itself is
the lifecycle's: :mod:`stepline.lifecycle.admission`)."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from stepline import lifecycle
from stepline.models import Account, Job, Process, UsageDaily
from stepline_control.schemas.usage import UsageDay, UsagePublic, UsageTotals
from stepline_control.services.errors import Invalid
from stepline_control.sessions import driver_connection

log = logging.getLogger(__name__)

MAX_RANGE_DAYS = 366

async def month_processes(session: AsyncSession, account_id: uuid.UUID) -> int:
    """The processes the monthly quota counts, as admission counts them."""
    return await lifecycle.month_processes(await driver_connection(session), account_id)


def _day(column):
    return func.date(func.timezone(literal_column("'UTC'"), column))


async def usage(session: AsyncSession, *, account: Account, start: date | None,
                end: date | None) -> UsagePublic:
    today = datetime.now(UTC).date()
    end = end or today
    start = start or end.replace(day=1)
    if start > end:
        raise Invalid("`from` is after `to`",
                      [{"field": "from", "message": "must not be after `to`"}])
    if (end - start).days >= MAX_RANGE_DAYS:
        raise Invalid(f"a range is at most {MAX_RANGE_DAYS} days",
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
