"""Keyset pagination: ``limit`` and an opaque ``cursor`` that names the last row seen,
so a page costs the same at row 10 and at row 10 million and no row is skipped or
repeated while rows are added."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import Query
from sqlalchemy import Select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from stepline_control.services.errors import Invalid

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")]
CursorQuery = Annotated[str | None, Query(max_length=500,
                                          description="`next_cursor` of the previous page")]

T = TypeVar("T")


def encode_cursor(*values: Any) -> str:
    raw = json.dumps([v.isoformat() if isinstance(v, datetime) else str(v) for v in values])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor: str, types: tuple[type, ...]) -> tuple[Any, ...]:
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not isinstance(values, list) or len(values) != len(types):
            raise ValueError("wrong length")
        return tuple(_parse(t, v) for t, v in zip(types, values, strict=True))
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise Invalid("the cursor is not one this API returned",
                      [{"field": "cursor", "message": "not a cursor of this list"}],
                      code="invalid_cursor") from exc


def _parse(kind: type, value: Any) -> Any:
    if kind is datetime:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("naive time")
        return parsed
    if kind is uuid.UUID:
        return uuid.UUID(value)
    if kind is int:
        return int(value)
    return str(value)


async def paginate(
    session: AsyncSession,
    query: Select,
    *,
    keys: tuple[InstrumentedAttribute, ...],
    limit: int,
    cursor: str | None,
    descending: bool = False,
) -> tuple[list[Any], str | None]:
    """One page of ``query`` ordered by ``keys`` (the last one unique), and the cursor
    of the next page (None on the last page)."""
    if cursor:
        after = decode_cursor(cursor, tuple(k.type.python_type for k in keys))
        position = tuple_(*keys)
        query = query.where(position < after if descending else position > after)
    order = [k.desc() if descending else k.asc() for k in keys]
    rows = list(await session.scalars(query.order_by(*order).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, encode_cursor(*(getattr(last, k.key) for k in keys))
