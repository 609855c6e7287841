"""The functions catalog: public functions offered to every account, private ones
owned by the platform (account_id NULL) or by one account."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, String, func
from sqlalchemy.orm import Mapped, mapped_column

from stepline.models.base import Base


class Function(Base):
    __tablename__ = "functions"
    __table_args__ = (
        CheckConstraint("kind IN ('trigger', 'action')", name="kind"),
        CheckConstraint("visibility IN ('public', 'private')", name="visibility"),
    )

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    visibility: Mapped[str] = mapped_column(String(20))
    account_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE")
    )
    description: Mapped[str] = mapped_column(String(2000))
    config_schema: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
