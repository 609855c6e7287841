from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from stepline_control.deps import (
    BearerDep,
    MetricsDep,
    SessionDep,
    SettingsDep,
    VersionsDep,
    get_principal,
    get_writer,
)
from stepline_control.services import hooks, sms

router = APIRouter(prefix="/v1/hooks", tags=["hooks"])


class HookAccepted(BaseModel):
    job_id: uuid.UUID
    created: bool  # false: a retried call (same CloudEvent id or Idempotency-Key)


SMS_ANSWER = {"description": "an Sms step: the provider's answer (an empty TwiML "
              "`<Response/>`, the same for a message it sent before)",
              "content": {"text/xml": {}}}


@router.post("/{step_id}", status_code=202, response_model=HookAccepted,
             responses={200: SMS_ANSWER, 403: {"description": "an Sms step: the provider's "
                                                "signature does not hold"}})
async def call_hook(step_id: uuid.UUID, request: Request, session: SessionDep,
                    credentials: BearerDep, metrics: MetricsDep, versions: VersionsDep,
                    settings: SettingsDep) -> HookAccepted | Response:
    """Starts a job of the Webhook step's workflow with the posted data: a CloudEvent in
    binary or structured mode, or plain JSON (with an optional `Idempotency-Key`). A body
    that does not parse is a 400, kept as a dead letter of the account. An Sms step takes
    its provider's inbound-message webhook instead, with no bearer token: the provider's
    signature (Twilio's `X-Twilio-Signature`) is its authentication."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    if await sms.is_sms_step(session, step_id):
        content_type, answer = await sms.receive(
            session, step_id=step_id, url=str(request.url), headers=headers,
            body=await request.body(), secret_key=settings.secret_key, versions=versions,
            metrics=metrics)
        return Response(answer, status_code=200, media_type=content_type)
    principal = await get_writer(await get_principal(session, credentials))
    job_id, created = await hooks.call_hook(session, principal=principal, step_id=step_id,
                                            headers=headers, body=await request.body(),
                                            metrics=metrics, versions=versions)
    return HookAccepted(job_id=job_id, created=created)
