"""Workflows, their immutable versions, and the steps of each version.

A step's ``id`` is stable across versions for the same ``key`` (a Webhook's URL survives
an edit); a step row is identified by ``(workflow_version_id, id)``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from stepline.models.base import Base, Created, UuidPk


class Workflow(Base):
    __tablename__ = "workflows"
    __table_args__ = (
        Index(None, "account_id", "project_id"),
        CheckConstraint("automation_type IN ('step')", name="automation_type"),
    )

    id: Mapped[UuidPk]
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(2000))
    automation_type: Mapped[str] = mapped_column(String(20), server_default=text("'step'"))
    current_version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    paused_at: Mapped[datetime | None]
    blocked_at: Mapped[datetime | None]
    blocked_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[Created]
    updated_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]


class WorkflowVersion(Base):
    __tablename__ = "workflow_versions"
    __table_args__ = (UniqueConstraint("workflow_id", "version"),)

    id: Mapped[UuidPk]
    workflow_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    # the definition as submitted, kept verbatim for diffs and the UI
    definition: Mapped[dict[str, Any]]
    entry_step_key: Mapped[str] = mapped_column(String(100))
    created_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[Created]


class Step(Base):
    __tablename__ = "steps"
    __table_args__ = (
        UniqueConstraint("workflow_version_id", "key"),
        Index(None, "id"),
        CheckConstraint("output IS NULL OR output IN ('single', 'multiple')", name="output"),
    )

    workflow_version_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workflow_versions.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    workflow_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(100))
    name: Mapped[str | None] = mapped_column(String(200))
    function: Mapped[str] = mapped_column(String(100))
    config: Mapped[dict[str, Any]]
    next_key: Mapped[str | None] = mapped_column(String(100))
    output: Mapped[str | None] = mapped_column(String(20))
    retry: Mapped[dict[str, Any] | None]
    position: Mapped[int] = mapped_column(Integer)
