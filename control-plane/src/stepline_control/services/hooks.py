"""Webhook calls through the control plane: ``POST /v1/hooks/{step_id}`` with an API
token of the step's account. Parsing, idempotency and the payload schema are the
runtime's (:mod:`stepline.webhooks`), shared with the Webhook function itself; the start
and its admission are the lifecycle's, as for every other trigger."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from stepline import lifecycle, webhooks
from stepline.errors import MalformedEvent, Rejected
from stepline_control.auth import Principal
from stepline_control.metrics import Metrics
from stepline_control.services import dead_letters
from stepline_control.services.errors import Invalid, Malformed, NotFound, Refused
from stepline_control.sessions import work


async def call_hook(session: AsyncSession, *, principal: Principal, step_id: uuid.UUID,
                    headers: dict[str, str], body: bytes, metrics: Metrics,
                    versions: lifecycle.Versions) -> tuple[uuid.UUID, bool]:
    """Start (or find, for a retried call) the job; its id and whether it is new."""
    try:
        call = webhooks.parse(headers, body)
    except MalformedEvent as exc:  # kept, so a caller's broken integration can be seen
        await dead_letters.keep_malformed_call(session, account_id=principal.account_id,
                                               step_id=step_id, headers=headers, body=body,
                                               reason=str(exc))
        raise Malformed(str(exc)) from exc
    target = lifecycle.StepTarget(step_id, "Webhook", account_id=principal.account_id)
    async with work(session) as unit:
        try:
            started = await lifecycle.start(
                unit, versions, target, payload=call.payload, trigger="webhook",
                idempotency_key=call.idempotency_key, check=webhooks.schema_check)
        except lifecycle.NotStartable as exc:
            raise NotFound("webhook step") from exc
        except Rejected as exc:
            raise Invalid(str(exc), exc.problems, code="invalid_payload") from exc
        except lifecycle.StartRefused as exc:
            raise Invalid(str(exc), code="refused") from exc
    if isinstance(started, lifecycle.Refusal):
        raise Refused(started)
    if started.created:
        metrics.jobs_started.labels("webhook").inc()
    return started.job_id, started.created
