"""The unit of work: one transaction of lifecycle changes, then the end check of every
job it touched.

A job ends when nothing of it is outstanding, and only a check made *after* the commit
that finished its last process can see that (the last process to commit is sure to see
every other one committed). So a change that may end a job says so
(:meth:`Unit.may_end`), and the unit checks those jobs once its transaction committed —
never a caller by hand."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg

from stepline.lifecycle.jobs import finish_many


class Unit:
    """The connection a unit's changes run on, and the jobs to check after its commit."""

    def __init__(self, conn: psycopg.AsyncConnection) -> None:
        self.conn = conn
        self._ending: dict[uuid.UUID, None] = {}  # ordered, without repeats

    def may_end(self, job_id: uuid.UUID) -> None:
        self._ending[job_id] = None

    @property
    def ending(self) -> list[uuid.UUID]:
        return list(self._ending)

    async def end_jobs(self, conn: psycopg.AsyncConnection | None = None
                       ) -> dict[uuid.UUID, str | None]:
        """After the commit: end each touched job that has nothing outstanding, all in one
        statement; the jobs ended, with their final status."""
        if not self._ending:
            return {}
        ending, self._ending = list(self._ending), {}
        return await finish_many(conn or self.conn, ending)


@asynccontextmanager
async def work(conn: psycopg.AsyncConnection, *, atomic: bool = True) -> AsyncIterator[Unit]:
    """A unit on an autocommit connection: its changes in one transaction (``atomic``;
    without it, each statement is its own), then the touched jobs' end checks."""
    unit = Unit(conn)
    if atomic:
        async with conn.transaction():
            yield unit
    else:
        yield unit
    await unit.end_jobs()
