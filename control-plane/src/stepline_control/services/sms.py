"""Inbound SMS through the control plane: ``POST /v1/hooks/{step_id}`` of an Sms step,
with no bearer token — the provider's signature is its authentication. The provider
seam (:mod:`stepline.sms`) checks the signature against the step's connection (its
``public_url`` when set: the address the provider was given, behind any proxy), reads
the message into the payload and names it; the job starts through the lifecycle's
trigger start with the message's id as its idempotency key, so a retried delivery
starts nothing new and gets the same answer. A bad signature starts and stores
nothing; a message that cannot start a job is kept as a dead letter of the step."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from stepline import lifecycle, sms
from stepline.errors import MalformedEvent, PermanentError
from stepline.lifecycle import triggers
from stepline.models import Connection
from stepline.secrets import SecretBox
from stepline_control.metrics import Metrics
from stepline_control.services.errors import (
    Invalid,
    Malformed,
    NotFound,
    NotSigned,
    Refused,
    Unavailable,
)
from stepline_control.sessions import driver_connection, work

FUNCTION = "Sms"


async def is_sms_step(session: AsyncSession, step_id: uuid.UUID) -> bool:
    """Whether the step is the Sms entry of a live workflow (whose calls need no token)."""
    conn = await driver_connection(session)
    return await triggers.trigger_step(conn, step_id, FUNCTION) is not None


async def receive(session: AsyncSession, *, step_id: uuid.UUID, url: str,
                  headers: Mapping[str, str], body: bytes, secret_key: str | None,
                  versions: lifecycle.Versions, metrics: Metrics) -> tuple[str, bytes]:
    """The provider's answer (content type, body) to one inbound message."""
    step = await triggers.trigger_step(await driver_connection(session), step_id, FUNCTION)
    if step is None:
        raise NotFound("sms step")
    connection, secret = await _connection(session, step, secret_key)
    provider = sms.PROVIDERS[connection.kind]
    try:
        form = sms.Form.parse(body)
        provider.verify(sms.signed_url(url, connection.config.get("public_url")), form,
                        headers, secret)
        key = f"{provider.kind}:{provider.idempotency_key(form)}"
    except sms.SignatureInvalid as exc:
        raise NotSigned(str(exc)) from exc
    except MalformedEvent as exc:
        raise Malformed(str(exc)) from exc
    await _start(session, step, provider.parse(form), key=key, form=form, versions=versions,
                 metrics=metrics)
    return provider.answer()


async def _connection(session: AsyncSession, step: dict[str, Any], secret_key: str | None
                      ) -> tuple[Connection, dict[str, Any]]:
    name = (step["config"] or {}).get("connection")
    connection = await session.scalar(select(Connection).where(
        Connection.account_id == step["account_id"], Connection.name == name))
    if connection is None or connection.kind not in sms.PROVIDERS:
        # no secret to check a signature with: nobody can be let in
        raise NotSigned(f"the step's connection {name!r} is not an SMS provider's: no "
                        "signature can be checked")
    try:
        secret = SecretBox(secret_key).open(connection.secret) if connection.secret else {}
    except PermanentError as exc:
        raise Unavailable(str(exc), "secrets_unavailable") from exc
    return connection, secret


async def _start(session: AsyncSession, step: dict[str, Any], payload: dict[str, Any], *,
                 key: str, form: sms.Form, versions: lifecycle.Versions,
                 metrics: Metrics) -> None:
    target = lifecycle.StepTarget(step["step_id"], FUNCTION)
    trigger = {"provider": "twilio", "account_sid": form.first("AccountSid")}
    try:
        async with work(session) as unit:
            started = await triggers.fire(unit, versions, target, payload=payload,
                                          trigger="sms", key=key, trigger_data=trigger)
    except PermanentError as exc:  # the entry step cannot take this payload
        await _keep(session, step, key, str(exc), form)
        raise Invalid(str(exc), code="refused") from exc
    if isinstance(started, lifecycle.Refusal):
        await _keep(session, step, key, started.message, form)
        raise Refused(started)
    if isinstance(started, lifecycle.Started) and started.created:
        metrics.jobs_started.labels("sms").inc()


async def _keep(session: AsyncSession, step: dict[str, Any], key: str, reason: str,
                form: sms.Form) -> None:
    letter = lifecycle.DeadLetter(
        consumer=FUNCTION, event_id=f"{step['step_id']}:{key}"[:200], reason=reason,
        headers={"stepline-step-id": str(step["step_id"])},
        body="&".join(f"{k}={v}" for k, values in sorted(form.items()) for v in values),
        account_id=step["account_id"])
    await triggers.dead_letter(await driver_connection(session), step["step_id"], letter)
    await session.commit()
