"""Usage per account and day, rolled up from jobs and processes (and kept after they
are pruned), plus the starts refused for quota or blocking."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import Date, ForeignKey, Integer, text
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
