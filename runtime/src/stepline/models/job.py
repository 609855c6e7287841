"""Jobs (one run of a workflow) and processes (one execution of one step for one
message). A job never holds a counter: its counts and its end are derived from its
processes, so a fan-out of thousands never queues behind one row lock.

The control plane's watchdog is the only writer of ``stuck_since`` / ``stuck_reason``:
a running job with outstanding work and no progress for too long, and why.

Metering needs no counter either: a process carries the unit price of its function,
copied when it is inserted, and a service call's child job carries the call's price and
who called; both rows are written exactly once (the inbox sees to that), so a bill is a
sum over rows that a redelivery cannot double."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from stepline.models.base import Base, Created, JsonNullable, UuidPk

JOB_STATUSES = ("running", "succeeded", "failed", "cancelled")
PROCESS_STATUSES = ("pending", "running", "succeeded", "failed", "cancelled")


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(f"status IN {JOB_STATUSES}", name="status"),
        Index(None, "account_id", "created_at"),
        Index(None, "workflow_id", "created_at"),
        Index("ix_jobs_running", "created_at", postgresql_where=text("status = 'running'")),
        Index(
            "uq_jobs_workflow_idempotency",
            "workflow_id",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
        Index(None, "parent_process_id", postgresql_where=text("parent_process_id IS NOT NULL")),
        # the few stuck jobs, for the API's filter and the metrics
        Index("ix_jobs_stuck", "stuck_since", postgresql_where=text("stuck_since IS NOT NULL")),
        # the calls a caller's bill counts
        Index("ix_jobs_caller", "caller_account_id", "created_at",
              postgresql_where=text("caller_account_id IS NOT NULL")),
        CheckConstraint("call_price >= 0", name="call_price"),
    )

    id: Mapped[UuidPk]
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    workflow_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    workflow_version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflow_versions.id"))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), server_default=text("'running'"))
    trigger: Mapped[str] = mapped_column(String(20))
    payload: Mapped[JsonNullable]
    # the packet's ``trigger``: what the trigger knew of its event besides the payload
    trigger_data: Mapped[dict[str, Any] | None]
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    # Workflow.call: the parent's waiting process, and how deep the call chain is
    parent_process_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    depth: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[Created]
    finished_at: Mapped[datetime | None]
    # the watchdog: no progress since this moment, and which process waits and why
    stuck_since: Mapped[datetime | None]
    stuck_reason: Mapped[dict[str, Any] | None]
    # a service call: the service, the account that called it (its bill), and the price
    # of the call when it started; the job itself runs in the publisher's account
    service_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"))
    caller_account_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    call_price: Mapped[Decimal | None] = mapped_column(Numeric(18, 6))


class Process(Base):
    __tablename__ = "processes"
    __table_args__ = (
        CheckConstraint(f"status IN {PROCESS_STATUSES}", name="status"),
        ForeignKeyConstraint(
            ["workflow_version_id", "step_id"], ["steps.workflow_version_id", "steps.id"]
        ),
        Index(None, "job_id", "created_at"),
        # the job-end check reads only outstanding processes
        Index(
            "ix_processes_outstanding",
            "job_id",
            postgresql_where=text("status IN ('pending', 'running')"),
        ),
        Index(None, "account_id", "created_at"),
        Index(None, "parent_id", postgresql_where=text("parent_id IS NOT NULL")),
    )

    id: Mapped[UuidPk]
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    workflow_version_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    step_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    step_key: Mapped[str] = mapped_column(String(100))
    function: Mapped[str] = mapped_column(String(100))
    parent_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    status: Mapped[str] = mapped_column(String(20), server_default=text("'pending'"))
    attempt: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    input: Mapped[JsonNullable]
    output: Mapped[JsonNullable]
    error: Mapped[dict[str, Any] | None]
    logs: Mapped[list[Any] | None]
    # the function's price per process when this one was created; NULL: not billed per
    # process (a service step: its call is billed on the child job)
    unit_price: Mapped[Decimal | None] = mapped_column(Numeric(18, 6))
    created_at: Mapped[Created]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
