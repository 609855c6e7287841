"""A service call's start: the service found by name, the caller's right to call it,
its input checked against the service's schema, and the publisher's admission said in
words that tell the caller nothing of the publisher (no block reason, no quota).

Everything here refuses before a job exists, so a refused call is never billed: the
call's price is written on the child job by the start's one statement, or not at all."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

from stepline import bounded, payload_schema
from stepline.db import fetch_one
from stepline.errors import PermanentError
from stepline.lifecycle.admission import Refusal

# what a caller is told when the publisher's side refuses: never the publisher's reason
_REFUSED_FOR_CALLER = {
    "account_blocked": "its publisher's account is blocked",
    "workflow_blocked": "it is blocked by an operator",
    "workflow_paused": "its publisher paused it",
    "quota_exceeded": "its publisher reached its monthly quota",
}


class ServiceUnavailable(PermanentError):
    """The service cannot be called at all: unknown, unpublished, private to another
    account, or its workflow is gone."""


class InvalidInput(PermanentError):
    """The call's input does not satisfy the service's ``input_schema``."""

    def __init__(self, message: str, problems: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True)
class ServiceTarget:
    """A published service called by name from a step of ``caller``'s account."""

    name: str
    caller: uuid.UUID


async def service_row(conn: psycopg.AsyncConnection, target: ServiceTarget) -> dict[str, Any]:
    """The start's row for a call (see ``service_target``), once the caller may call it."""
    row = await fetch_one(conn, "service_target", name=target.name)
    if row is None:
        raise ServiceUnavailable(f"there is no service named {target.name!r}")
    if row["unpublished"]:
        raise ServiceUnavailable(f"the service {target.name} was unpublished by its publisher")
    if row["visibility"] == "private" and row["account_id"] != target.caller:
        raise ServiceUnavailable(f"the service {target.name} is private to another account")
    if row["workflow_deleted"] or row["step_key"] is None:
        raise ServiceUnavailable(f"the service {target.name} has no workflow to run any more")
    return {**row, "caller_account_id": target.caller, "call_price": row["price_per_call"]}


async def check_input(row: dict[str, Any], payload: Any) -> None:
    """The input against the service's schema (the publisher's: its patterns on RE2, in a
    bounded worker), every problem named by its field."""
    try:
        problems = await bounded.shared().run(payload_schema.payload_problems,
                                              row["input_schema"], payload,
                                              what="checking a service's input_schema")
    except bounded.Overrun as exc:
        problems = [{"field": "input_schema", "message": str(exc)}]
    problems = [{**p, "field": "input" + p["field"].removeprefix("payload")} for p in problems]
    if problems:
        listed = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
        raise InvalidInput(f"the input does not satisfy the input schema of the service "
                           f"{row['service_name']}: {listed}", problems)


def for_caller(refused: Refusal, row: dict[str, Any]) -> Refusal:
    """The refusal as the caller may read it."""
    reason = _REFUSED_FOR_CALLER.get(refused.code, "its publisher cannot run it now")
    return Refusal(refused.code, f"the service {row['service_name']} cannot be called: "
                                 f"{reason}")
