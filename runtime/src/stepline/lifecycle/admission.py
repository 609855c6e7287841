"""The one admission rule: whether a job may start, or a process be created, now.

A pure function over one row (:class:`Gate`) that every start reads the same way —
manual starts, Webhook calls, schedule ticks and Workflow.call children. The control
plane maps each refusal's ``code`` to its HTTP status in one place; a trigger answers
"skipped" with the refusal's message."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

RefusalCode = Literal["account_blocked", "workflow_blocked", "workflow_paused", "quota_exceeded"]


@dataclass(frozen=True)
class Gate:
    """What admission reads of a workflow and its account."""

    account_id: uuid.UUID
    account_blocked: bool
    account_blocked_reason: str | None
    workflow_blocked: bool
    workflow_blocked_reason: str | None
    paused: bool
    monthly_quota: int | None
    used: int  # processes counted against the quota this month (0 without a quota)


@dataclass(frozen=True)
class Refusal:
    code: RefusalCode
    message: str

    @property
    def counted(self) -> bool:
        """A pause is the owner's own choice, not a refusal: usage does not count it."""
        return self.code != "workflow_paused"


def refusal(gate: Gate, *, starting: bool = True) -> Refusal | None:
    """Why a start must be refused now, or None. A pause stops what starts a job, not the
    work of jobs already running (``starting=False``: a retried process)."""
    if gate.account_blocked:
        return Refusal("account_blocked", "the account is blocked: no job can start "
                       f"({gate.account_blocked_reason or 'no reason given'})")
    if gate.workflow_blocked:
        return Refusal("workflow_blocked", "the workflow is blocked by an operator "
                       f"({gate.workflow_blocked_reason or 'no reason given'})")
    if gate.paused and starting:
        return Refusal("workflow_paused", "the workflow is paused: resume it first")
    if gate.monthly_quota is not None and gate.used >= gate.monthly_quota:
        return Refusal("quota_exceeded", "the account reached its monthly quota of "
                       f"{gate.monthly_quota} processes")
    return None
