"""What a trigger that reaches a source of its own (Queue, Email) may do besides starting
jobs — :class:`stepline.context.TriggerRuntime`'s part that goes through
:mod:`stepline.lifecycle.triggers`: start one event's job with its keys, keep an event
that cannot start one as its step's dead letter, read its step, report how its source
is, move its cursor. Mixed into the step runtime, which holds the pool and versions."""

from __future__ import annotations

import uuid
from typing import Any

from psycopg_pool import AsyncConnectionPool

from stepline import lifecycle
from stepline.context import StoredConnection, TriggerStep
from stepline.db import connection
from stepline.lifecycle import triggers


class TriggerCapabilities:
    pool: AsyncConnectionPool
    versions: lifecycle.Versions
    consumer: str

    async def fire(self, target: lifecycle.StepTarget, **options: Any
                   ) -> lifecycle.Started | lifecycle.Refusal | lifecycle.Seen:
        """One event of a trigger step, its job started in a unit of its own."""
        async with connection(self.pool) as conn, lifecycle.work(conn) as unit:
            return await triggers.fire(unit, self.versions, target, **options)

    async def reject(self, step: TriggerStep, *, key: str, reason: str,
                     headers: dict[str, str], body: str | None,
                     cursor: dict[str, Any] | None = None) -> None:
        """An event of the step that cannot start a job, kept as the step's dead letter
        (once per step and key) and counted."""
        letter = lifecycle.DeadLetter(
            consumer=self.consumer, event_id=f"{step.id}:{key}"[:200], reason=reason,
            headers={**headers, "stepline-step-id": str(step.id)}, body=body,
            account_id=step.account_id)
        async with connection(self.pool) as conn, conn.transaction():
            await triggers.dead_letter(conn, step.id, letter, cursor=cursor)

    async def trigger_step(self, step_id: uuid.UUID, function: str) -> TriggerStep | None:
        async with connection(self.pool) as conn:
            row = await triggers.trigger_step(conn, step_id, function)
        if row is None:
            return None
        return TriggerStep(id=row["step_id"], function=function, workflow_id=row["workflow_id"],
                           account_id=row["account_id"], config=row["config"],
                           cursor=row["cursor"], stopped=row["stopped"])

    async def report(self, step_id: uuid.UUID, state: triggers.State, *,
                     error: str | None = None) -> None:
        async with connection(self.pool) as conn:
            await triggers.report(conn, step_id, state, error=error)

    async def stored_connection(self, account_id: uuid.UUID, name: str, *,
                                kind: str | None = None) -> StoredConnection: ...

    async def connection(self, account_id: uuid.UUID, name: str, *, kind: str
                         ) -> StoredConnection:
        """The account's connection of that kind with its secret opened."""
        return await self.stored_connection(account_id, name, kind=kind)

    async def move_cursor(self, step_id: uuid.UUID, cursor: dict[str, Any]) -> None:
        async with connection(self.pool) as conn:
            await triggers.move_cursor(conn, step_id, cursor)
