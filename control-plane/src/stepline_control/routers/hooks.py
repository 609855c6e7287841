from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from pydantic import BaseModel

from stepline_control.deps import MetricsDep, SessionDep, VersionsDep, WriterDep
from stepline_control.services import hooks

router = APIRouter(prefix="/v1/hooks", tags=["hooks"])


class HookAccepted(BaseModel):
    job_id: uuid.UUID
    created: bool  # false: a retried call (same CloudEvent id or Idempotency-Key)


@router.post("/{step_id}", status_code=202)
async def call_hook(step_id: uuid.UUID, request: Request, session: SessionDep,
                    principal: WriterDep, metrics: MetricsDep, versions: VersionsDep
                    ) -> HookAccepted:
    """Starts a job of the Webhook step's workflow with the posted data: a CloudEvent in
    binary or structured mode, or plain JSON (with an optional `Idempotency-Key`). A body
    that does not parse is a 400, kept as a dead letter of the account."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    job_id, created = await hooks.call_hook(session, principal=principal, step_id=step_id,
                                            headers=headers, body=await request.body(),
                                            metrics=metrics, versions=versions)
    return HookAccepted(job_id=job_id, created=created)
