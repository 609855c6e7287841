from __future__ import annotations

import uuid

from fastapi import APIRouter

from stepline_control.deps import MetricsDep, SessionDep, WriterDep
from stepline_control.schemas.jobs import ProcessPublic
from stepline_control.services import jobs

router = APIRouter(prefix="/v1/processes", tags=["jobs"])


@router.post("/{process_id}/retry")
async def retry_process(process_id: uuid.UUID, session: SessionDep, principal: WriterDep,
                        metrics: MetricsDep) -> ProcessPublic:
    """Runs a failed process again with its recorded input; its job runs again."""
    process = await jobs.retry_process(session, principal=principal, process_id=process_id,
                                       metrics=metrics)
    return ProcessPublic.model_validate(process, from_attributes=True)
