"""Where the control plane's SQLAlchemy sessions meet the runtime's named SQL and its
lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from sqlalchemy.ext.asyncio import AsyncSession

from stepline.lifecycle import Unit


async def driver_connection(session: AsyncSession) -> psycopg.AsyncConnection:
    """The psycopg connection under the session, in the session's transaction: the
    runtime's named SQL runs on it, so a start commits with everything else."""
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    return raw.driver_connection


@asynccontextmanager
async def work(session: AsyncSession) -> AsyncIterator[Unit]:
    """The lifecycle's unit of work on the session: its changes commit with the session's
    own, then the jobs it touched are ended (and that committed too). An exception
    commits nothing."""
    unit = Unit(await driver_connection(session))
    yield unit
    await session.commit()
    if unit.ending:
        await unit.end_jobs(await driver_connection(session))
        await session.commit()
