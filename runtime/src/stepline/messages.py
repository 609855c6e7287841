"""What a finished process sends on: the plan (pure) and its insertion (one round trip
for the processes and one for the outbox rows, however large the fan-out)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from stepline.db import execute, jsonb
from stepline.definition import Step, Version
from stepline.errors import PermanentError
from stepline.packet import Packet, ProcessRef, event_attributes

# documented in docs/operations.md (Limits): what one step may send on
FAN_OUT_MAX = 100_000


@dataclass(frozen=True)
class Route:
    """A handler's choice of the next step (Condition), overriding the step's ``next``."""

    next: str | None
    payload: Any


@dataclass(frozen=True)
class Message:
    step: Step
    payload: Any


def plan(step: Step, result: Any, version: Version) -> tuple[Any, list[Message]]:
    """The output to record and the messages to send, following the step's ``output``:
    ``single`` one message, ``multiple`` one per item, ``null`` none."""
    next_key, output = (
        (result.next, result.payload) if isinstance(result, Route) else (step.next_key, result)
    )
    if step.output is None or next_key is None:
        return output, []
    target = version.steps.get(next_key)
    if target is None:
        raise PermanentError(f"step {step.key!r}: next step {next_key!r} does not exist")
    if step.output == "multiple":
        if not isinstance(output, list):
            raise PermanentError(
                f"step {step.key!r} has output 'multiple' but its result is "
                f"{type(output).__name__}, not an array"
            )
        if len(output) > FAN_OUT_MAX:
            raise PermanentError(f"step {step.key!r} fans out {len(output)} items: at most "
                                 f"{FAN_OUT_MAX} go out of one step")
        return output, [Message(target, item) for item in output]
    return output, [Message(target, output)]


def outbox_row(
    packet: Packet, *, destination: str, not_before: datetime | None = None
) -> dict[str, Any]:
    event_id = uuid.uuid4()
    return {
        "event_id": str(event_id),
        "destination": destination,
        "job_id": str(packet.job.id),
        "process_id": str(packet.process.id),
        "account_id": str(packet.account.id),
        "attributes": event_attributes(packet, event_id=event_id),
        "data": packet.model_dump(mode="json"),
        "not_before": not_before.isoformat() if not_before else None,
    }


def outgoing(
    parent: Packet, messages: list[Message], *, workflow_version_id: uuid.UUID,
    root: bool = False,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The pending processes and outbox rows of ``messages``, as the JSON rows that
    ``processes_insert`` and ``outbox_insert`` (or ``step_succeed``) take.
    ``root``: the messages start the job and have no parent process."""
    processes, rows = [], []
    for message in messages:
        packet = parent.for_step(
            step_id=message.step.id,
            step_key=message.step.key,
            payload=message.payload,
            process_id=uuid.uuid4(),
        )
        if root:
            packet = packet.model_copy(update={"process": ProcessRef(id=packet.process.id)})
        processes.append(
            {
                "id": str(packet.process.id),
                "job_id": str(packet.job.id),
                "account_id": str(packet.account.id),
                "workflow_version_id": str(workflow_version_id),
                "step_id": str(message.step.id),
                "step_key": message.step.key,
                "function": message.step.function,
                "parent_id": str(packet.process.parent_id) if packet.process.parent_id else None,
                "input": message.payload,
            }
        )
        rows.append(outbox_row(packet, destination=message.step.function))
    return processes, rows


async def send(
    conn: psycopg.AsyncConnection,
    *,
    parent: Packet,
    messages: list[Message],
    workflow_version_id: uuid.UUID,
    root: bool = False,
) -> int:
    """Insert one pending process and one outbox row per message, in the caller's
    transaction. ``root``: the messages start the job and have no parent process."""
    if not messages:
        return 0
    processes, rows = outgoing(parent, messages, workflow_version_id=workflow_version_id,
                               root=root)
    await execute(conn, "processes_insert", rows=jsonb(processes))
    await execute(conn, "outbox_insert", rows=jsonb(rows))
    return len(rows)
