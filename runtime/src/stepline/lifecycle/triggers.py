"""Triggers that reach a source of their own — a queue (Queue), a mailbox (Email), an
SMS provider (Sms): each event of theirs starts one job, and each says how its source is.

- :func:`fire` starts the job of one event through :func:`~stepline.lifecycle.start`,
  with the event's keys (an Email's UIDVALIDITY + UID and Message-ID) recorded as consumed
  and the trigger's counts and cursor moved in the same transaction: an event seen
  before starts nothing, however it comes again.
- :func:`dead_letter` keeps an event that cannot start a job, counted with it.
- :func:`report` records what a consumer or poller found: connected, failing (since when
  and why), or idle.
- :func:`health_of` is what a trigger's health says *now*: a consumer that stopped
  reporting is failing, whatever it said last — the trigger that "stays active" while it
  silently stopped consuming is the bug this guards against.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import psycopg

from stepline.db import execute, fetch_all, fetch_one, jsonb
from stepline.lifecycle.admission import Refusal
from stepline.lifecycle.deadletters import DeadLetter, keep
from stepline.lifecycle.start import Started, StepTarget, start
from stepline.lifecycle.unit import Unit
from stepline.lifecycle.versions import Versions

State = Literal["connected", "failing", "idle"]
# the triggers with a health: those that reach a source of their own
WATCHED = ("Queue", "Email", "Sms")
# a queue's consumer reports every few seconds (one machine) or the reconciler every
# pass (a cluster): silence this long means it stopped
QUEUE_BOUND_S = 120.0
# a mailbox is polled every `every` seconds, at most once a minute in a cluster (a
# PingSource's resolution): three polls missed, and a minute more, mean it stopped
EMAIL_MISSED_POLLS = 3
EMAIL_SLACK_S = 60.0
EMAIL_MIN_TICK_S = 60.0
EMAIL_DEFAULT_EVERY_S = 60.0


@dataclass(frozen=True)
class Seen:
    """An event of a trigger already acted on: one of its keys was recorded before."""

    key: str


def consumer_of(step_id: uuid.UUID) -> str:
    """The inbox's consumer name for a trigger step's event keys."""
    return f"trigger:{step_id}"


async def fire(unit: Unit, versions: Versions, target: StepTarget, *, payload: Any,
               trigger: str, key: str, also: Sequence[str] = (),
               cursor: dict[str, Any] | None = None, check: Any = None,
               trigger_data: dict[str, Any] | None = None) -> Started | Refusal | Seen:
    """One event of a trigger step, in the unit's transaction. ``key`` is its
    idempotency key; ``also`` are other names of the same event (a Message-ID) that
    must not start a second job either. A refusal is recorded by the start: the caller
    keeps the event as a dead letter (:func:`dead_letter`)."""
    if also:
        seen = await fetch_all(unit.conn, "trigger_seen", consumer=consumer_of(target.step_id),
                               keys=[key, *also])
        if seen:
            await _count(unit.conn, target.step_id, duplicates=1, cursor=cursor)
            return Seen(seen[0]["key"])
    started = await start(unit, versions, target, payload=payload, trigger=trigger,
                          idempotency_key=key, check=check, trigger_data=trigger_data)
    if isinstance(started, Started):
        await _count(unit.conn, target.step_id, started=int(started.created),
                     duplicates=int(not started.created), cursor=cursor)
    return started


async def dead_letter(conn: psycopg.AsyncConnection, step_id: uuid.UUID,
                      letter: DeadLetter, *, cursor: dict[str, Any] | None = None) -> None:
    """An event of the step that cannot start a job: kept with its reason and counted,
    in the caller's transaction."""
    await keep(conn, letter)
    await _count(conn, step_id, dead_letters=1, cursor=cursor)


async def _count(conn: psycopg.AsyncConnection, step_id: uuid.UUID, *, started: int = 0,
                 duplicates: int = 0, dead_letters: int = 0,
                 cursor: dict[str, Any] | None = None) -> None:
    await execute(conn, "trigger_event", step_id=step_id, started=started,
                  duplicates=duplicates, dead_letters=dead_letters,
                  cursor=jsonb(cursor) if cursor is not None else None)


async def report(conn: psycopg.AsyncConnection, step_id: uuid.UUID, state: State, *,
                 error: str | None = None, unacked: int | None = None) -> None:
    """What the step's consumer or poller found of its source, now."""
    await execute(conn, "trigger_report", step_id=step_id, state=state,
                  error=error if state == "failing" else None, unacked=unacked)


async def move_cursor(conn: psycopg.AsyncConnection, step_id: uuid.UUID,
                      cursor: dict[str, Any]) -> None:
    await execute(conn, "trigger_cursor", step_id=step_id, cursor=jsonb(cursor))


async def trigger_step(conn: psycopg.AsyncConnection, step_id: uuid.UUID, function: str
                       ) -> dict[str, Any] | None:
    """The live trigger step a consumer or poller works for (its config, account,
    cursor, and whether it is ``stopped``), or None if it is no longer live."""
    return await fetch_one(conn, "trigger_step", step_id=step_id, function=function)


# -- reading ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    """A trigger step's health as the API, the UI and the metrics show it."""

    step_id: uuid.UUID
    workflow_id: uuid.UUID
    account_id: uuid.UUID
    function: str
    state: State
    error: str | None = None
    since: datetime | None = None  # failing since
    checked_at: datetime | None = None  # its consumer's or poller's last report
    last_event_at: datetime | None = None
    started: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    unacked: int | None = None


def bound_s(function: str, config: dict[str, Any]) -> float | None:
    """How long a trigger may go without a report before it counts as stopped; None for
    one that only answers what is posted to it (Sms)."""
    if function == "Queue":
        return QUEUE_BOUND_S
    if function == "Email":
        every = config.get("every", EMAIL_DEFAULT_EVERY_S)
        every = every if isinstance(every, int | float) else EMAIL_DEFAULT_EVERY_S
        return EMAIL_MISSED_POLLS * max(float(every), EMAIL_MIN_TICK_S) + EMAIL_SLACK_S
    return None


def health_of(row: dict[str, Any], now: datetime) -> Health:
    """What a row of ``trigger_health`` says now (pure)."""
    base = {k: row[k] for k in ("step_id", "workflow_id", "account_id", "function")}
    counts = {k: row[k] or 0 for k in ("started", "duplicates", "dead_letters")}
    seen = {"checked_at": row["checked_at"], "last_event_at": row["last_event_at"],
            "unacked": row["unacked"], **counts}
    if row["stopped"]:
        return Health(**base, state="idle", **seen)
    bound = bound_s(row["function"], row["config"] or {})
    if not row["reported"]:
        if bound is not None and now - row["version_created_at"] > timedelta(seconds=bound):
            return Health(**base, state="failing", since=row["version_created_at"],
                          error="no consumer or poller has reported on this trigger yet")
        return Health(**base, state="idle")
    if bound is not None and now - row["checked_at"] > timedelta(seconds=bound):
        return Health(**base, state="failing", since=row["checked_at"], **seen,
                      error=f"no report from this trigger's consumer since "
                      f"{row['checked_at'].isoformat()}: it may have stopped")
    return Health(**base, state=row["state"], error=row["error"], since=row["failing_since"],
                  **seen)


async def health(conn: psycopg.AsyncConnection, *, now: datetime,
                 step_id: uuid.UUID | None = None,
                 workflow_ids: Sequence[uuid.UUID] | None = None,
                 account_id: uuid.UUID | None = None) -> dict[uuid.UUID, Health]:
    """The health of the live trigger steps asked for (every one when nothing narrows
    it), by step id."""
    rows = await fetch_all(conn, "trigger_health", functions=list(WATCHED), step_id=step_id,
                           workflow_ids=list(workflow_ids) if workflow_ids is not None else None,
                           account_id=account_id)
    return {row["step_id"]: health_of(row, now) for row in rows}
