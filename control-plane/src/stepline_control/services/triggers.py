"""Trigger health as the API shows it: for a step, or for the entry trigger of each
workflow of a page, read through the lifecycle's one reading of it
(:func:`stepline.lifecycle.triggers.health`), within one account."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from stepline.lifecycle import Health, triggers
from stepline_control.auth import Principal
from stepline_control.schemas.workflows import TriggerHealthPublic
from stepline_control.sessions import driver_connection


def public(health: Health) -> TriggerHealthPublic:
    return TriggerHealthPublic(
        state=health.state, error=health.error, since=health.since,
        checked_at=health.checked_at, last_event_at=health.last_event_at,
        started=health.started, duplicates=health.duplicates,
        dead_letters=health.dead_letters, unacked=health.unacked)


async def of_step(session: AsyncSession, *, principal: Principal, step_id: uuid.UUID
                  ) -> TriggerHealthPublic | None:
    """The step's health when it is a live trigger step that has one."""
    found = await triggers.health(await driver_connection(session), now=datetime.now(UTC),
                                  step_id=step_id, account_id=principal.account_id)
    return public(found[step_id]) if step_id in found else None


async def of_workflows(session: AsyncSession, *, account_id: uuid.UUID,
                       workflow_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, TriggerHealthPublic]:
    """Each workflow's entry trigger's health, by workflow id (those that have one)."""
    if not workflow_ids:
        return {}
    found = await triggers.health(await driver_connection(session), now=datetime.now(UTC),
                                  workflow_ids=workflow_ids, account_id=account_id)
    return {h.workflow_id: public(h) for h in found.values()}
