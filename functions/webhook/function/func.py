"""Webhook: ``POST /{step_id}`` with a CloudEvent (binary or structured mode) or plain
JSON starts a job of the step's workflow with the data as payload, and answers 202 with
the job's id. Served with func's ``invoke: http`` (a plain JSON call is no CloudEvent),
authenticated by the bearer token whose SHA-256 is the step's ``token_sha256``; the
step's ``payload_schema`` is enforced. A retried call (same CloudEvent source and id, or
the same ``Idempotency-Key``) answers the first call's job."""

from __future__ import annotations

import uuid
from typing import Any

from stepline.sdk import (
    CATALOG,
    FunctionHost,
    MalformedEvent,
    Refusal,
    StepTarget,
    TriggerRuntime,
    parse_webhook_call,
    skipped,
    token_check,
)


def request_headers(scope: dict[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def bearer_token(headers: dict[str, str]) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" and token else None


class Webhook:
    spec = CATALOG["Webhook"]

    async def http(
        self, runtime: TriggerRuntime, scope: dict[str, Any], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        if scope["method"] != "POST":
            return 405, {"error": {"type": "MethodNotAllowed", "message": "POST /{step_id}"}}
        try:
            step_id = uuid.UUID(scope["path"].rstrip("/").rsplit("/", 1)[-1])
        except ValueError as exc:
            raise MalformedEvent("POST to /{step_id}: the path names no step") from exc
        headers = request_headers(scope)
        call = parse_webhook_call(headers, body)
        started = await runtime.start(
            StepTarget(step_id, "Webhook"), payload=call.payload, trigger="webhook",
            idempotency_key=call.idempotency_key, check=token_check(bearer_token(headers)))
        if isinstance(started, Refusal):
            return 200, skipped(started)
        return 202, started.body()


def new() -> FunctionHost:
    return FunctionHost(Webhook())
