"""The Sms trigger's seam to an SMS provider's inbound-message webhook: check that a
request is the provider's own (its signature is its only authentication), read the
message into the job's payload, name the message for idempotency, and give the answer
the provider expects. Pure: the HTTP request arrives already read, as the URL it was
signed for, its form body and its headers.

Twilio is the first provider. Its ``X-Twilio-Signature`` is checked against the
account's Auth Token (the ``twilio`` connection's secret ``auth_token``) with the
``twilio`` package's own ``RequestValidator``, never an HMAC written here. Another
provider is one more class with the four methods of :class:`Provider`.

The payload::

    {"from": "+5511...", "to": "+5511...", "body": "text", "message_sid": "SM...",
     "media": [{"url": "https://...", "content_type": "image/jpeg"}]}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit, urlunsplit

from twilio.request_validator import SIGNATURE_HEADER, RequestValidator

from stepline.errors import MalformedEvent, PermanentError, Unauthorized

# Twilio sends at most 10 media per message; a form names no more than this many fields
MAX_MEDIA = 10
MAX_FORM_FIELDS = 200
EMPTY_TWIML = ("text/xml", b'<?xml version="1.0" encoding="UTF-8"?><Response/>')


class SignatureInvalid(Unauthorized):
    """The request does not carry the provider's valid signature: answered 403, nothing
    is started or stored."""


class Form(dict[str, list[str]]):
    """A form-encoded body: every value of every field, since the signature covers them
    all. ``getlist`` is what Twilio's validator asks a multi-valued form for."""

    @classmethod
    def parse(cls, body: bytes) -> Form:
        try:
            fields = parse_qs(
                body.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                max_num_fields=MAX_FORM_FIELDS,
            )
        except (UnicodeDecodeError, ValueError) as exc:
            raise MalformedEvent(
                f"the body is not a UTF-8 form (x-www-form-urlencoded): {exc}"
            ) from exc
        return cls(fields)

    def getlist(self, name: str) -> list[str]:
        return self[name]

    def first(self, name: str) -> str | None:
        values = self.get(name)
        return values[0] if values else None


class Provider(Protocol):
    """One SMS provider's inbound webhook. ``kind`` is its connection's kind."""

    kind: str

    def verify(self, url: str, form: Form, headers: Mapping[str, str],
               secret: Mapping[str, Any]) -> None:
        """Raise :class:`SignatureInvalid` unless the provider signed this request."""

    def parse(self, form: Form) -> dict[str, Any]:
        """The job's payload."""

    def idempotency_key(self, form: Form) -> str:
        """The message's identity: a retried delivery names the same."""

    def answer(self) -> tuple[str, bytes]:
        """Content type and body of the reply, the same for a duplicate."""


def signed_url(reached: str, public_url: str | None) -> str:
    """The URL the provider signed: the request's path and query under the connection's
    ``public_url`` (the platform's address as the provider was given it, behind any
    proxy) when set, otherwise the URL the request reached."""
    if not public_url:
        return reached
    base, request = urlsplit(public_url), urlsplit(reached)
    path = base.path.rstrip("/") + request.path
    return urlunsplit((base.scheme, base.netloc, path, request.query, ""))


class Twilio:
    kind = "twilio"

    def verify(self, url: str, form: Form, headers: Mapping[str, str],
               secret: Mapping[str, Any]) -> None:
        lowered = {name.lower(): value for name, value in headers.items()}
        signature = lowered.get(SIGNATURE_HEADER.lower())
        if not signature:
            raise SignatureInvalid(f"no {SIGNATURE_HEADER} header")
        if not RequestValidator(auth_token(secret)).validate(url, form, signature):
            raise SignatureInvalid(f"{SIGNATURE_HEADER} does not match this request to {url}")

    def parse(self, form: Form) -> dict[str, Any]:
        return {
            "from": form.first("From"),
            "to": form.first("To"),
            "body": form.first("Body") or "",
            "message_sid": form.first("MessageSid"),
            "media": [
                {"url": url, "content_type": form.first(f"MediaContentType{n}")}
                for n in range(media_count(form))
                if (url := form.first(f"MediaUrl{n}"))
            ],
        }

    def idempotency_key(self, form: Form) -> str:
        sid = form.first("MessageSid")
        if not sid:
            raise MalformedEvent("a Twilio message webhook names its MessageSid")
        return sid

    def answer(self) -> tuple[str, bytes]:
        return EMPTY_TWIML


def auth_token(secret: Mapping[str, Any]) -> str:
    token = secret.get("auth_token")
    if not isinstance(token, str) or not token:
        raise PermanentError("the twilio connection's secret has no auth_token")
    return token


def media_count(form: Form) -> int:
    text = form.first("NumMedia") or "0"
    return min(int(text), MAX_MEDIA) if text.isascii() and text.isdigit() else 0


PROVIDERS: dict[str, Provider] = {provider.kind: provider for provider in (Twilio(),)}
