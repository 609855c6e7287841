"""What a dead letter keeps of its message: at most :data:`BODY_MAX_BYTES` of the body
and :data:`HEADER_MAX_BYTES` of each header (at most :data:`HEADERS_MAX` of them), cut
at a character boundary, without the NUL characters PostgreSQL's text and jsonb cannot
hold; ``truncated`` says something was cut. A pure function, called by the one writer
of dead letters, so one huge or hostile event cannot grow the table by its size."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# enough of a body to see what was wrong with it; the rest is not evidence, only size
BODY_MAX_BYTES = 64 * 1024
HEADER_MAX_BYTES = 4 * 1024
HEADERS_MAX = 100
REASON_MAX_BYTES = 4 * 1024


@dataclass(frozen=True)
class Bounded:
    """What is stored of a dead letter's body and headers; ``truncated`` when either
    was cut."""

    body: str | None
    headers: dict[str, str]
    truncated: bool


def cut(text: str, limit: int) -> tuple[str, bool]:
    """At most ``limit`` bytes of UTF-8, cut at a character boundary, NUL made U+FFFD;
    and whether anything was cut."""
    raw = text.replace("\x00", "\ufffd").encode("utf-8", "replace")
    if len(raw) <= limit:
        return raw.decode("utf-8"), False
    return raw[:limit].decode("utf-8", "ignore"), True


def bounded(*, body: str | None, headers: Mapping[str, Any]) -> Bounded:
    kept_body, was_cut = cut(body, BODY_MAX_BYTES) if body is not None else (None, False)
    kept: dict[str, str] = {}
    for name, value in list(headers.items())[:HEADERS_MAX]:
        key, key_cut = cut(str(name), HEADER_MAX_BYTES)
        kept[key], value_cut = cut(str(value), HEADER_MAX_BYTES)
        was_cut = was_cut or key_cut or value_cut
    return Bounded(body=kept_body, headers=kept,
                   truncated=was_cut or len(headers) > HEADERS_MAX)


def bounded_reason(reason: str) -> str:
    return cut(reason, REASON_MAX_BYTES)[0]
