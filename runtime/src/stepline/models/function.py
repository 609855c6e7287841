"""The functions catalog: public functions offered to every account, private ones
owned by the platform (account_id NULL) or by one account.

Three origins share the table, so a name is unique across all of them: the built-in
catalog (seeded at start), functions an operator registers from outside this repository
(``endpoint`` says where the relay delivers to them), and published services (kind
``service``, owned by their publisher; the ``services`` table holds the rest).

``price_per_process`` is copied onto each process when it is inserted (the meter is the
process row itself), so a later change of price never rewrites a bill already run up."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Numeric, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from stepline.models.base import Base


class Function(Base):
    __tablename__ = "functions"
    __table_args__ = (
        CheckConstraint("kind IN ('trigger', 'action', 'service')", name="kind"),
        CheckConstraint("price_per_process >= 0", name="price_per_process"),
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
    price_per_process: Mapped[Decimal] = mapped_column(Numeric(18, 6), server_default=text("0"))
    # where the relay delivers this function's messages when not to its own queue or URL:
    # a registered function's URL (one machine) or queue (cluster); a service's handler
    endpoint: Mapped[str | None] = mapped_column(String(500))
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
