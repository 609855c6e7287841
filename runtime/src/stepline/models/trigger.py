"""What each trigger step that reaches a source of its own (a queue, a mailbox, an SMS
provider) last said of it: connected, failing since when and why, or idle; when it last
brought an event and what became of its events. One row per step id (stable across
versions), written only through :mod:`stepline.lifecycle.triggers`.

``checked_at`` is the last report: a consumer that dies stops reporting, and readers
take a report older than its trigger's bound as failing, so no trigger stays "connected"
after it silently stopped."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from stepline.models.base import Base, Created

TRIGGER_STATES = ("connected", "failing", "idle")


class TriggerHealth(Base):
    __tablename__ = "trigger_health"
    __table_args__ = (
        CheckConstraint(f"state IN {TRIGGER_STATES}", name="state"),
        Index(None, "workflow_id"),
        Index(None, "account_id"),
    )

    step_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    workflow_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)
    failing_since: Mapped[datetime | None]
    checked_at: Mapped[Created]
    last_event_at: Mapped[datetime | None]
    started: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    duplicates: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    dead_letters: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    # messages consumed and not yet settled (a queue consumer), as last reported
    unacked: Mapped[int | None] = mapped_column(Integer)
    # how far a poller has read its source (the Email trigger's UIDVALIDITY and UID)
    cursor: Mapped[dict[str, Any] | None]
