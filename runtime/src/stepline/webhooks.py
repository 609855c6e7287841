"""A Webhook call, wherever it arrives (the control plane's ``POST /v1/hooks/{step_id}``
or the Webhook function itself): a CloudEvent in binary or structured mode, or plain
JSON, whose data becomes the job's payload. The CloudEvent's ``source`` + ``id``, or an
``Idempotency-Key`` header, makes a retried call start one job (the start itself is
:func:`stepline.lifecycle.start`'s). A ``payload_schema`` in
the step's config is enforced, in a bounded worker (:mod:`stepline.payload_schema`); the
step's ``token_sha256`` authenticates direct calls. A payload nested deeper than
:data:`stepline.packet.PAYLOAD_MAX_DEPTH` is malformed, like a body that does not parse."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from cloudevents.core.bindings.http import HTTPMessage, from_http_event
from cloudevents.core.exceptions import CloudEventValidationError

from stepline import bounded, payload_schema
from stepline.errors import MalformedEvent, Rejected, Unauthorized
from stepline.packet import PAYLOAD_MAX_DEPTH, deeper_than

STRUCTURED = "application/cloudevents+json"


@dataclass(frozen=True)
class Call:
    payload: Any
    idempotency_key: str | None


def parse(headers: dict[str, str], body: bytes) -> Call:
    """The payload and idempotency key of a call (header names lowercase)."""
    content_type = headers.get("content-type", "")
    if "ce-id" in headers or content_type.startswith(STRUCTURED):
        try:
            event = from_http_event(HTTPMessage(headers=headers, body=body))
        except RecursionError as exc:
            raise MalformedEvent("the body is nested too deeply") from exc
        except (CloudEventValidationError, ValueError) as exc:
            raise MalformedEvent(f"not a valid CloudEvent: {exc}") from exc
        data = event.get_data()
        if isinstance(data, bytes):
            data = _json(data)
        _check_depth(data)
        return Call(payload=data, idempotency_key=f"ce:{event.get_source()}:{event.get_id()}")
    key = headers.get("idempotency-key")
    payload = _json(body) if body else None
    _check_depth(payload)
    return Call(payload=payload, idempotency_key=key and f"key:{key}")


def _check_depth(payload: Any) -> None:
    if deeper_than(payload, PAYLOAD_MAX_DEPTH):
        raise MalformedEvent(f"the payload nests deeper than {PAYLOAD_MAX_DEPTH} levels")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _json(raw: bytes) -> Any:
    """JSON as RFC 8259 writes it: NaN and Infinity (which Python reads) are refused."""
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError as exc:
        raise MalformedEvent("the body is nested too deeply") from exc
    except ValueError as exc:
        raise MalformedEvent(f"the body is not JSON: {exc}") from exc


def token_check(token: str | None):
    """For direct calls to the function: the bearer token's SHA-256 must match the
    step's ``token_sha256``; a step without one accepts only the control plane."""

    async def check(config: dict[str, Any], payload: Any) -> None:
        expected = config.get("token_sha256")
        if not expected or not token:
            raise Unauthorized("this Webhook needs a token (config.token_sha256)")
        digest = hashlib.sha256(token.encode()).hexdigest()
        if not hmac.compare_digest(digest, expected.lower()):
            raise Unauthorized("the token does not match this Webhook")
        await schema_check(config, payload)

    return check


async def schema_check(config: dict[str, Any], payload: Any) -> None:
    schema = config.get("payload_schema")
    if not schema:
        return
    try:
        problems = await bounded.shared().run(payload_schema.payload_problems, schema, payload,
                                              what="checking the payload_schema")
    except bounded.Overrun as exc:
        problems = [{"field": "payload_schema", "message": str(exc)}]
    if problems:
        raise Rejected("the payload does not satisfy the step's payload_schema", problems)
