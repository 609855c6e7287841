"""The transactional outbox, the inbox of consumed event ids, and dead letters."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Identity,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from stepline.models.base import Base, Created

OUTBOX_STATUSES = ("pending", "sent", "dead", "cancelled")


class OutboxMessage(Base):
    """One CloudEvent to deliver to one function, written in the transaction that
    produced it. ``not_before`` holds a scheduled retry until it is due."""

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(f"status IN {OUTBOX_STATUSES}", name="status"),
        # the relay's claim: due pending rows in order
        Index("ix_outbox_due", "not_before", "id", postgresql_where=text("status = 'pending'")),
        Index(None, "job_id", postgresql_where=text("status = 'pending'")),
        Index("ix_outbox_sent_at", "sent_at", postgresql_where=text("status = 'sent'")),
        # the fair claim: each account's due pending rows in order
        Index("ix_outbox_fair", "account_id", "not_before", "id",
              postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    destination: Mapped[str] = mapped_column(String(100))
    job_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    process_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # whose work it is: the relay claims fairly across accounts
    account_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # CloudEvent attributes (type, source, extensions...) and its data, the packet
    attributes: Mapped[dict[str, Any]]
    data: Mapped[Any] = mapped_column(JSONB, nullable=False)
    status: Mapped[str] = mapped_column(String(20), server_default=text("'pending'"))
    not_before: Mapped[datetime] = mapped_column(server_default=func.now())
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    claimed_until: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[Created]
    sent_at: Mapped[datetime | None]


class InboxEntry(Base):
    """An event id a consumer has acted on. Recorded in the same transaction as the
    consumer's effects, so a redelivery changes nothing."""

    __tablename__ = "inbox"
    __table_args__ = (Index(None, "received_at"),)

    consumer: Mapped[str] = mapped_column(String(100), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    process_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    received_at: Mapped[Created]


class DeadLetter(Base):
    """A message nobody could act on, kept with the reason: never silently dropped."""

    __tablename__ = "dead_letters"
    __table_args__ = (
        Index(
            "uq_dead_letters_consumer_event",
            "consumer",
            "event_id",
            unique=True,
            postgresql_where=text("event_id IS NOT NULL"),
        ),
        Index(None, "job_id", postgresql_where=text("job_id IS NOT NULL")),
        Index(None, "created_at"),
        # an account's list, newest first (GET /v1/dead-letters)
        Index(None, "account_id", "created_at", "id"),
        # retention: resolved ones go first
        Index(None, "resolved_at", postgresql_where=text("resolved_at IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    consumer: Mapped[str] = mapped_column(String(100))
    event_id: Mapped[str | None] = mapped_column(String(200))
    account_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    job_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    process_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # where it was given up: the function itself, the relay, or the broker's DLQ
    origin: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    headers: Mapped[dict[str, Any] | None]
    # at most stepline.deadletter_limits.BODY_MAX_BYTES of it; truncated: the body or a header
    # was cut to its limit
    body: Mapped[str | None] = mapped_column(Text)
    truncated: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_at: Mapped[Created]
    resolved_at: Mapped[datetime | None]
