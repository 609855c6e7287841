"""Dead letters: what nobody could act on, with its reason, listed, inspected and
retried."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query

from stepline_control.deps import MetricsDep, PrincipalDep, SessionDep, WriterDep
from stepline_control.pagination import CursorQuery, LimitQuery
from stepline_control.schemas.common import Page
from stepline_control.schemas.dead_letters import (
    DeadLetterPublic,
    DeadLetterRetried,
    DeadLetterSummary,
)
from stepline_control.services import dead_letters

router = APIRouter(prefix="/v1/dead-letters", tags=["dead letters"])

DeadLetterId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.get("")
async def list_dead_letters(
    session: SessionDep, principal: PrincipalDep,
    consumer: Annotated[str | None, Query(max_length=100, description="the function that "
                                          "gave it up, e.g. `Http.request`")] = None,
    resolved: Annotated[bool | None, Query(description="true: only the resolved (retried) "
                                           "ones; false: only those still open")] = None,
    job_id: uuid.UUID | None = None,
    account_id: Annotated[uuid.UUID | None, Query(description="operators: one account's "
                                                  "(an operator reads every account's)")
                          ] = None,
    limit: LimitQuery = 50, cursor: CursorQuery = None,
) -> Page[DeadLetterSummary]:
    """The account's dead letters, newest first, without their headers and body."""
    items, next_cursor = await dead_letters.list_dead_letters(
        session, principal=principal, consumer=consumer, resolved=resolved, job_id=job_id,
        account_id=account_id, limit=limit, cursor=cursor)
    return Page[DeadLetterSummary](items=items, next_cursor=next_cursor)


@router.get("/{dead_letter_id}")
async def get_dead_letter(dead_letter_id: DeadLetterId, session: SessionDep,
                          principal: PrincipalDep) -> DeadLetterPublic:
    """One dead letter with its reason, headers and body (bodies are kept up to 64 KiB;
    `truncated` says one was cut)."""
    dead = await dead_letters.read_dead_letter(session, principal=principal,
                                               dead_letter_id=dead_letter_id)
    return dead_letters.public(dead)


@router.post("/{dead_letter_id}/retry")
async def retry_dead_letter(dead_letter_id: DeadLetterId, session: SessionDep,
                            principal: WriterDep, metrics: MetricsDep) -> DeadLetterRetried:
    """Runs its failed process again, as `POST /v1/processes/{id}/retry` does, and
    resolves it; 409 when it has no process to run (a malformed event)."""
    return await dead_letters.retry_dead_letter(session, principal=principal,
                                                dead_letter_id=dead_letter_id, metrics=metrics)
