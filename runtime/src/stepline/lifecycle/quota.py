"""The monthly quota counted at every process creation — a job's start, a step's next
processes, a fan-out, a child job — in the transaction that creates them. Only accounts
with a quota are counted (``quota_usage``): its row lock queues their concurrent creations
until the first commits, so together they never overshoot; accounts without one take no
lock at all."""

from __future__ import annotations

import uuid

import psycopg

from stepline.db import execute, fetch_one
from stepline.errors import PermanentError


class OverQuota(PermanentError):
    """Creating these processes would go past the account's monthly quota."""


async def take(conn: psycopg.AsyncConnection, account_id: uuid.UUID, n: int) -> None:
    """Count ``n`` new processes, in the caller's transaction; :class:`OverQuota` if they
    do not fit (the caller rolls back what it wrote). The month's first take counts what
    the account used so far (a new month, a quota set behind the API's back)."""
    row = await fetch_one(conn, "quota_take", account_id=account_id, n=n)
    if row["quota"] is not None and row["used"] is None:
        await reset(conn, account_id)
        row = await fetch_one(conn, "quota_take", account_id=account_id, n=n)
    if row["quota"] is not None and row["taken"] is None:
        raise OverQuota(refusal_message(row["quota"], row["used"] or 0, n))


def refusal_message(quota: int, used: int, n: int) -> str:
    if used >= quota:
        return f"the account reached its monthly quota of {quota} processes"
    return (f"{n} new process(es) would go past the account's monthly quota of {quota} "
            f"processes ({used} used this month)")


async def reset(conn: psycopg.AsyncConnection, account_id: uuid.UUID) -> None:
    """After a quota was set or changed: count what the account really used this month."""
    await execute(conn, "quota_reset", account_id=account_id)
