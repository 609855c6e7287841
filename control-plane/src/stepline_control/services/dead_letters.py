"""Dead letters through the API: an account lists and inspects its own (an operator
every account's, and those naming no account), and retries one whose process failed —
by :func:`stepline_control.services.jobs.retry_process`, which also resolves it. A
malformed event has no process: there is nothing to retry. A Webhook call that does not
parse is kept here too (:func:`keep_malformed_call`)."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from stepline import lifecycle
from stepline.models import DeadLetter, Process
from stepline_control.auth import Principal
from stepline_control.metrics import Metrics
from stepline_control.pagination import paginate
from stepline_control.schemas.dead_letters import (
    DeadLetterPublic,
    DeadLetterRetried,
    DeadLetterSummary,
)
from stepline_control.schemas.jobs import ProcessPublic
from stepline_control.services import jobs
from stepline_control.services.errors import Conflict, NotFound
from stepline_control.sessions import work

# what a kept call never shows again: the caller's credentials
UNKEPT_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


def _readable(query: Select, principal: Principal) -> Select:
    if principal.is_operator:
        return query
    return query.where(DeadLetter.account_id == principal.account_id)


def summary(dead: DeadLetter) -> DeadLetterSummary:
    return DeadLetterSummary.model_validate(
        {**_columns(dead), "retryable": dead.process_id is not None})


def public(dead: DeadLetter) -> DeadLetterPublic:
    return DeadLetterPublic.model_validate(
        {**_columns(dead), "retryable": dead.process_id is not None})


def _columns(dead: DeadLetter) -> dict:
    return {c.key: getattr(dead, c.key) for c in DeadLetter.__table__.columns}


async def list_dead_letters(
    session: AsyncSession, *, principal: Principal, consumer: str | None,
    resolved: bool | None, job_id: uuid.UUID | None, account_id: uuid.UUID | None,
    limit: int, cursor: str | None,
) -> tuple[list[DeadLetterSummary], str | None]:
    """Newest first."""
    query = _readable(select(DeadLetter), principal)
    if account_id is not None:
        query = query.where(DeadLetter.account_id == account_id)
    if consumer is not None:
        query = query.where(DeadLetter.consumer == consumer)
    if resolved is not None:
        query = query.where(DeadLetter.resolved_at.is_not(None) if resolved
                            else DeadLetter.resolved_at.is_(None))
    if job_id is not None:
        query = query.where(DeadLetter.job_id == job_id)
    rows, next_cursor = await paginate(session, query,
                                       keys=(DeadLetter.created_at, DeadLetter.id),
                                       limit=limit, cursor=cursor, descending=True)
    return [summary(d) for d in rows], next_cursor


async def read_dead_letter(session: AsyncSession, *, principal: Principal, dead_letter_id: int
                           ) -> DeadLetter:
    dead = await session.scalar(
        _readable(select(DeadLetter).where(DeadLetter.id == dead_letter_id), principal))
    if dead is None:
        raise NotFound("dead letter")
    return dead


async def retry_dead_letter(session: AsyncSession, *, principal: Principal,
                            dead_letter_id: int, metrics: Metrics) -> DeadLetterRetried:
    """Changes stay within one's own account, as a process retry does."""
    dead = await session.scalar(select(DeadLetter).where(
        DeadLetter.id == dead_letter_id, DeadLetter.account_id == principal.account_id))
    if dead is None:
        raise NotFound("dead letter")
    if dead.process_id is None:
        raise Conflict("this dead letter has no process (a malformed event): nothing to "
                       "retry", "nothing_to_retry")
    # only whether it exists: retry_process reads it again under its lock
    if await session.scalar(select(Process.id).where(Process.id == dead.process_id)) is None:
        raise Conflict("the process of this dead letter no longer exists (its job was "
                       "pruned): nothing to retry", "nothing_to_retry")
    process = await jobs.retry_process(session, principal=principal,
                                       process_id=dead.process_id, metrics=metrics)
    await session.refresh(dead)
    return DeadLetterRetried(dead_letter=summary(dead),
                             process=ProcessPublic.model_validate(process, from_attributes=True))


async def keep_malformed_call(session: AsyncSession, *, account_id: uuid.UUID,
                              step_id: uuid.UUID, headers: dict[str, str], body: bytes,
                              reason: str) -> None:
    """A Webhook call that did not parse, kept as a dead letter of the caller's account
    in a transaction of its own."""
    letter = lifecycle.DeadLetter(
        consumer="Webhook", event_id=None, origin="api", account_id=account_id,
        reason=f"POST /v1/hooks/{step_id}: {reason}",
        headers={k: v for k, v in headers.items() if k.lower() not in UNKEPT_HEADERS},
        body=body.decode("utf-8", "replace"))
    async with work(session) as unit:
        await lifecycle.keep(unit.conn, letter)
