"""What retention keeps of the bills when it deletes old jobs: per account, UTC day,
role, item and unit price, the count of what was billed (processes of a function, calls
of a service) or served (calls a publisher's service answered)."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

from sqlalchemy import CheckConstraint, Date, ForeignKey, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from stepline.models.base import Base

BILLING_ROLES = ("used", "served")


class BillingDaily(Base):
    __tablename__ = "billing_daily"
    __table_args__ = (CheckConstraint(f"role IN {BILLING_ROLES}", name="role"),)

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    role: Mapped[str] = mapped_column(String(10), primary_key=True)
    item: Mapped[str] = mapped_column(String(100), primary_key=True)
    unit_price: Mapped[Decimal] = mapped_column(Numeric(18, 6), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # the function's kind, or "service"
    count: Mapped[int] = mapped_column(Integer)
