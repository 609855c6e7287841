"""Webhook: ``POST /{step_id}`` with a CloudEvent (binary or structured mode) or plain
JSON starts a job of the step's workflow with the data as payload, and answers 202 with
the job's id. Served with func's ``invoke: http`` (a plain JSON call is no CloudEvent),
authenticated by the bearer token whose SHA-256 is the step's ``token_sha256``; the
step's ``payload_schema`` is enforced. A retried call (same CloudEvent source and id, or
the same ``Idempotency-Key``) answers the first call's job."""

from __future__ import annotations

import uuid
from typing import Any

from stepline.catalog import CATALOG
from stepline.db import connection
from stepline.errors import MalformedEvent
from stepline.host import FunctionHost
from stepline.step import StepRuntime
from stepline.webhooks import accept, parse, token_check


def request_headers(scope: dict[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def bearer_token(headers: dict[str, str]) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" and token else None


class Webhook:
    spec = CATALOG["Webhook"]

    async def http(
        self, runtime: StepRuntime, scope: dict[str, Any], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        if scope["method"] != "POST":
            return 405, {"error": {"type": "MethodNotAllowed", "message": "POST /{step_id}"}}
        try:
            step_id = uuid.UUID(scope["path"].rstrip("/").rsplit("/", 1)[-1])
        except ValueError as exc:
            raise MalformedEvent("POST to /{step_id}: the path names no step") from exc
        headers = request_headers(scope)
        call = parse(headers, body)
        async with connection(runtime.pool) as conn, conn.transaction():
            fired = await accept(
                conn, step_id=step_id, call=call, check=token_check(bearer_token(headers))
            )
        if fired.created:
            await runtime.finish_job(fired.job_id)
        return (200 if fired.skipped else 202), fired.body()


def new() -> FunctionHost:
    return FunctionHost(Webhook())
