"""Stored connections: where a function reaches a customer's database or API, or where a
trigger reaches its source (a broker, a mailbox, an SMS provider's account)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from stepline.models.base import Base, Created, UuidPk

CONNECTION_KINDS = ("postgres", "http", "amqp", "imap", "twilio")


class Connection(Base):
    __tablename__ = "connections"
    __table_args__ = (
        UniqueConstraint("account_id", "name"),
        CheckConstraint(f"kind IN {CONNECTION_KINDS}", name="kind"),
    )

    id: Mapped[UuidPk]
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    config: Mapped[dict[str, Any]]
    # Fernet token of the JSON secret; never returned, never logged
    secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[Created]
