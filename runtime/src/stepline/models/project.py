"""Projects group an account's workflows."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from stepline.models.base import Base, Created, UuidPk


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[UuidPk]
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[Created]
    updated_at: Mapped[datetime | None]
