"""One mail message's raw RFC 5322 bytes made into the Email trigger's job payload.

Pure: the standard ``email`` package (``policy.default``) does the MIME work —
multipart/alternative, quoted-printable and base64, RFC 2047 encoded-word headers,
RFC 2231 file names. Whatever the bytes, a payload comes out: a header that cannot be
read is left empty, a charset Python does not know is read as UTF-8 with replacement
characters, never an exception (a message a sender got wrong must not stop a mailbox).

The payload::

    {
      "message_id": "<id@host>" | null,       # the Message-ID header as sent
      "from": {"name": str, "address": str} | null,   # the first author
      "to": [{"name": str, "address": str}, ...],     # every To header's addresses
      "cc": [{"name": str, "address": str}, ...],
      "subject": str,                         # "" when absent
      "date": "2026-11-22T10:00:00+00:00" | null,     # ISO 8601 in UTC
      "text": str | null,                     # the text/plain body
      "html": str | null,                     # the text/html body
      "attachments": [{"filename": str | null, "content_type": str, "size": int}],
      "truncated": bool                       # text or html was cut at TEXT_LIMIT_CHARS
    }

``name`` is "" when the address has no display name. ``attachments`` lists every part
that is neither the text nor the HTML body, with its decoded size in bytes; with
``attachments="none"`` the list is empty. A date with no zone (or ``-0000``) is read as
UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email import policy
from email.errors import MessageError
from email.message import EmailMessage, Message
from email.parser import BytesParser
from typing import Any, Literal

# each of text and html is cut here: a job's payload is stored and sent on with every step
TEXT_LIMIT_CHARS = 256 * 1024
FALLBACK_CHARSET = "utf-8"

AttachmentMode = Literal["metadata", "none"]
# what policy.default's header and MIME parsing raises on some malformed input, met
# lazily when a header or payload is read: such a field is left empty, the rest is kept
UNREADABLE = (MessageError, ValueError, IndexError, TypeError, AttributeError, LookupError)


def parse_message(
    raw: bytes, *, attachments: AttachmentMode = "metadata", text_limit: int = TEXT_LIMIT_CHARS
) -> dict[str, Any]:
    """The payload of the message ``raw`` (see the module's docstring)."""
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    text_part, html_part = body_part(msg, "plain"), body_part(msg, "html")
    text, html = decoded_text(text_part), decoded_text(html_part)
    cut = any(body is not None and len(body) > text_limit for body in (text, html))
    return {
        "message_id": header_text(msg, "message-id").strip() or None,
        "from": next(iter(addresses(msg, "from")), None),
        "to": addresses(msg, "to"),
        "cc": addresses(msg, "cc"),
        "subject": header_text(msg, "subject"),
        "date": iso_date(msg),
        "text": text[:text_limit] if text is not None else None,
        "html": html[:text_limit] if html is not None else None,
        "attachments": [] if attachments == "none" else attachment_list(
            msg, skip=(text_part, html_part)
        ),
        "truncated": cut,
    }


def header_text(msg: Message, name: str) -> str:
    """A header's decoded text, or "" when it is absent or cannot be read."""
    try:
        value = msg.get(name)
        return "" if value is None else str(value)
    except UNREADABLE:
        return ""


def addresses(msg: Message, name: str) -> list[dict[str, str]]:
    found = []
    try:
        for header in msg.get_all(name) or ():
            for address in getattr(header, "addresses", ()):
                if address.addr_spec or address.display_name:
                    found.append({"name": address.display_name, "address": address.addr_spec})
    except UNREADABLE:
        pass  # what was read before the malformed part is kept
    return found


def iso_date(msg: Message) -> str | None:
    try:
        header = msg.get("date")
        when: datetime | None = getattr(header, "datetime", None)
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.astimezone(UTC).isoformat()
    except (*UNREADABLE, OverflowError):
        return None


def body_part(msg: Message, subtype: str) -> Message | None:
    if not isinstance(msg, EmailMessage):
        return None
    try:
        return msg.get_body(preferencelist=(subtype,))
    except UNREADABLE:
        return None


def decoded_text(part: Message | None) -> str | None:
    """A text part's content: transfer encoding undone, then its charset decoded."""
    if part is None:
        return None
    data = payload_bytes(part)
    charset = safe_charset(part)
    try:
        return data.decode(charset, errors="replace")
    except (LookupError, UnicodeError, ValueError, TypeError):
        return data.decode(FALLBACK_CHARSET, errors="replace")


def payload_bytes(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except UNREADABLE:
        return b""
    return data if isinstance(data, bytes) else b""


def safe_charset(part: Message) -> str:
    try:
        return part.get_content_charset() or "us-ascii"
    except UNREADABLE:
        return FALLBACK_CHARSET


def attachment_list(msg: Message, *, skip: tuple[Message | None, ...]) -> list[dict[str, Any]]:
    return [
        {"filename": filename(part), "content_type": part.get_content_type(), "size": size(part)}
        for part in leaves(msg)
        if not any(part is body for body in skip)
    ]


def leaves(msg: Message) -> list[Message]:
    """The message's non-multipart parts in order; an attached message is one leaf."""
    found, pending = [], [msg]
    while pending:
        part = pending.pop()
        children = part.get_payload() if part.is_multipart() else None
        if isinstance(children, list) and part.get_content_maintype() == "multipart":
            pending.extend(reversed([c for c in children if isinstance(c, Message)]))
        else:
            found.append(part)
    return found


def filename(part: Message) -> str | None:
    try:
        return part.get_filename()
    except UNREADABLE:
        return None


def size(part: Message) -> int:
    if part.is_multipart():  # an attached message: its bytes as they were sent
        try:
            return len(part.as_bytes())
        except (*UNREADABLE, UnicodeError):
            return 0
    return len(payload_bytes(part))
