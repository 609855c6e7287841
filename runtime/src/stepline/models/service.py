"""Services: workflows published to other accounts as functions (the notes' "workflow
as a service"). A service pins one version of its workflow; a call runs that version as
a child job in the publisher's account. Unpublishing keeps the row (a bill names it)
and frees the name; the catalog entry (``functions``, kind ``service``) goes."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, Numeric, String, text
from sqlalchemy.orm import Mapped, mapped_column

from stepline.models.base import Base, Created, UuidPk


class Service(Base):
    __tablename__ = "services"
    __table_args__ = (
        CheckConstraint("visibility IN ('public', 'private')", name="visibility"),
        CheckConstraint("price_per_call >= 0", name="price_per_call"),
        # one live service per name; unpublished ones keep theirs for the bills
        Index("uq_services_live_name", "name", unique=True,
              postgresql_where=text("unpublished_at IS NULL")),
        Index(None, "account_id"),
        Index(None, "workflow_id"),
    )

    id: Mapped[UuidPk]
    # the publisher: the account whose workflow runs, on its quota, with its connections
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    workflow_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    visibility: Mapped[str] = mapped_column(String(20))
    description: Mapped[str | None] = mapped_column(String(2000))
    input_schema: Mapped[dict[str, Any]]
    price_per_call: Mapped[Decimal] = mapped_column(Numeric(18, 6), server_default=text("0"))
    version: Mapped[int] = mapped_column(Integer)  # the workflow version a call runs
    created_at: Mapped[Created]
    updated_at: Mapped[datetime | None]
    unpublished_at: Mapped[datetime | None]
