"""Workflow versions as the runtime reads them: loaded from their rows once, then kept
for the life of the process — a version never changes once written."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from cachetools import LRUCache
from psycopg_pool import AsyncConnectionPool

from stepline.db import connection, fetch_all
from stepline.definition import RetryPolicy, Step, Version
from stepline.errors import PermanentError

CACHE_SIZE = 512


class UnknownVersion(PermanentError):
    """The packet names a version that does not exist."""


def version_from_rows(rows: list[dict[str, Any]]) -> Version:
    """A version from the rows of ``version_steps`` (one per step, in order)."""
    steps = {
        row["key"]: Step(
            id=row["id"], workflow_id=row["workflow_id"], key=row["key"], name=row["name"],
            function=row["function"], config=row["config"], next_key=row["next_key"],
            output=row["output"], retry=RetryPolicy.model_validate(row["retry"] or {}),
        )
        for row in rows
    }
    first = rows[0]
    return Version(id=first["workflow_version_id"], number=first["version"],
                   entry_key=first["entry_step_key"], steps=steps)


class Versions:
    """The one loader and cache of workflow versions in a process."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._cache: LRUCache[tuple[uuid.UUID, int], Version] = LRUCache(size)

    async def get(self, conn: psycopg.AsyncConnection, workflow_id: uuid.UUID,
                  number: int) -> Version:
        key = (workflow_id, number)
        if (cached := self._cache.get(key)) is not None:
            return cached
        rows = await fetch_all(conn, "version_steps", workflow_id=workflow_id, version=number)
        if not rows:
            raise UnknownVersion(f"workflow {workflow_id} has no version {number}")
        version = self._cache[key] = version_from_rows(rows)
        return version

    async def load(self, pool: AsyncConnectionPool, workflow_id: uuid.UUID,
                   number: int) -> Version:
        """The same, taking a connection of ``pool`` only when the version is not cached."""
        if (cached := self._cache.get((workflow_id, number))) is not None:
            return cached
        async with connection(pool) as conn:
            return await self.get(conn, workflow_id, number)
