"""The bill: an account's month, summed from the rows that are the meters. Each process
carries its function's price from the moment it was created; each service call's child
job carries the call's price and its caller. Nothing else is counted, so a redelivered
message (which the inbox turns into no new row) never bills twice, and no counter row
is contended. Days that retention pruned come from ``billing_daily``.

Amounts are ``Decimal`` from end to end: PostgreSQL's numeric in, decimal strings out."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, date, datetime, time
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from stepline_control.schemas.billing import ServedLine, Statement, StatementLine
from stepline_control.services.errors import Invalid

CSV_COLUMNS = ("function", "kind", "count", "unit_price", "amount")

# what the account used: processes of priced functions, and calls it made to services
USED = text("""
SELECT item, kind, unit_price, sum(n)::bigint AS count FROM (
    SELECT p.function AS item, coalesce(f.kind, 'action') AS kind, p.unit_price,
           count(*) AS n
    FROM processes p LEFT JOIN functions f ON f.name = p.function
    WHERE p.account_id = :account_id AND p.created_at >= :lower AND p.created_at < :upper
      AND p.unit_price IS NOT NULL
    GROUP BY 1, 2, 3
    UNION ALL
    SELECT s.name, 'service', j.call_price, count(*)
    FROM jobs j JOIN services s ON s.id = j.service_id
    WHERE j.caller_account_id = :account_id AND j.created_at >= :lower
      AND j.created_at < :upper
    GROUP BY 1, 2, 3
    UNION ALL
    SELECT item, kind, unit_price, count FROM billing_daily
    WHERE account_id = :account_id AND role = 'used' AND day >= :first AND day < :after
) used
GROUP BY item, kind, unit_price
ORDER BY item, unit_price
""")

# what the account's services answered: calls of its services by every caller
SERVED = text("""
SELECT item, unit_price, sum(n)::bigint AS calls FROM (
    SELECT s.name AS item, j.call_price AS unit_price, count(*) AS n
    FROM jobs j JOIN services s ON s.id = j.service_id
    WHERE j.account_id = :account_id AND j.created_at >= :lower AND j.created_at < :upper
    GROUP BY 1, 2
    UNION ALL
    SELECT item, unit_price, count FROM billing_daily
    WHERE account_id = :account_id AND role = 'served' AND day >= :first AND day < :after
) served
GROUP BY item, unit_price
ORDER BY item, unit_price
""")


def month_bounds(month: str | None) -> tuple[date, date]:
    """The month's first day and the next month's (UTC); the current month by default."""
    if month is None:
        today = datetime.now(UTC).date()
        first = today.replace(day=1)
    else:
        try:
            first = datetime.strptime(month, "%Y-%m").date()
        except ValueError as exc:
            raise Invalid("month is not YYYY-MM", [{"field": "month", "message":
                                                     "a month is YYYY-MM, such as 2026-12"}]
                          ) from exc
    after = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return first, after


async def statement(session: AsyncSession, *, account_id: uuid.UUID, month: str | None,
                    currency: str) -> Statement:
    first, after = month_bounds(month)
    params = {"account_id": account_id, "first": first, "after": after,
              "lower": datetime.combine(first, time(), UTC),
              "upper": datetime.combine(after, time(), UTC)}
    lines = [StatementLine(function=r.item, kind=r.kind, count=r.count,
                           unit_price=r.unit_price, amount=r.count * r.unit_price)
             for r in await session.execute(USED, params)]
    served = [ServedLine(service=r.item, calls=r.calls, unit_price=r.unit_price,
                         revenue=r.calls * r.unit_price)
              for r in await session.execute(SERVED, params)]
    return Statement(account_id=account_id, month=first.strftime("%Y-%m"), currency=currency,
                     lines=lines, total=sum((line.amount for line in lines), Decimal(0)),
                     served=served, revenue=sum((s.revenue for s in served), Decimal(0)))


def as_csv(bill: Statement) -> str:
    """The statement's lines, one per row, amounts as exact decimals."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for line in bill.lines:
        row = line.model_dump(mode="json")
        writer.writerow([row[column] for column in CSV_COLUMNS])
    return out.getvalue()
