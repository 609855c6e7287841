"""Where the control plane's SQLAlchemy sessions meet the runtime's named SQL."""

from __future__ import annotations

import psycopg
from sqlalchemy.ext.asyncio import AsyncSession


async def driver_connection(session: AsyncSession) -> psycopg.AsyncConnection:
    """The psycopg connection under the session, in the session's transaction: the
    runtime's named SQL runs on it, so a start commits with everything else."""
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    return raw.driver_connection
