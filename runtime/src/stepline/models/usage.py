"""Usage per account and day, rolled up from jobs and processes (and kept after they
are pruned), plus the starts refused for quota or blocking."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import BigInteger, Date, ForeignKey, Integer, text
from sqlalchemy.orm import Mapped, mapped_column

from stepline.models.base import Base


class UsageDaily(Base):
    __tablename__ = "usage_daily"

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    jobs: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    processes: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    refused: Mapped[int] = mapped_column(Integer, server_default=text("0"))


class QuotaUsage(Base):
    """The processes an account with a monthly quota created this month, counted in the
    transaction that creates them: its row lock makes concurrent creations queue rather
    than overshoot the quota. Accounts without a quota are not counted here (no lock)."""

    __tablename__ = "quota_usage"

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    month: Mapped[date] = mapped_column(Date, primary_key=True)  # its first day (UTC)
    processes: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
