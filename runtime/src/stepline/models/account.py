"""Accounts (tenants) and their API tokens."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from stepline.models.base import Base, Created, UuidPk

ROLES = ("admin", "editor", "viewer")


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[UuidPk]
    name: Mapped[str] = mapped_column(String(200))
    # operators run the platform: they manage accounts, quotas and private functions
    is_operator: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    monthly_quota: Mapped[int | None] = mapped_column(Integer)
    blocked_at: Mapped[datetime | None]
    blocked_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[Created]


class ApiToken(Base):
    __tablename__ = "api_tokens"
    __table_args__ = (
        CheckConstraint("role IN ('admin', 'editor', 'viewer')", name="role"),
        Index(None, "account_id"),
    )

    id: Mapped[UuidPk]
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    # sha256 of the token; the token itself is shown once and never stored
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[Created]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
