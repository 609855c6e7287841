from __future__ import annotations

import uuid

from fastapi import APIRouter, Request

from stepline_control.deps import PrincipalDep, SessionDep
from stepline_control.schemas.workflows import StepDetail
from stepline_control.services import workflows

router = APIRouter(prefix="/v1/steps", tags=["workflows"])


@router.get("/{step_id}")
async def get_step(step_id: uuid.UUID, request: Request, session: SessionDep,
                   principal: PrincipalDep) -> StepDetail:
    """A step's id is stable across versions: this is the step in the newest version.
    A Webhook or Sms step shows the URL it is called at; a Queue, Email or Sms step its
    trigger's health."""
    return await workflows.get_step(session, principal=principal, step_id=step_id,
                                    base_url=str(request.base_url))
