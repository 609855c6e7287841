"""Webhook calls through the control plane: ``POST /v1/hooks/{step_id}`` with an API
token of the step's account. Parsing, idempotency and the payload schema are the
runtime's (:mod:`stepline.webhooks`), shared with the Webhook function itself; admission
(blocked, quota, paused) is the same as a manual start's."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from stepline import jobs as runtime_jobs
from stepline import webhooks
from stepline.errors import MalformedEvent, Rejected
from stepline.models import Step, Workflow, WorkflowVersion
from stepline.triggers import TriggerRefused
from stepline_control.auth import Principal
from stepline_control.errors import ApiError, conflict, not_found
from stepline_control.metrics import Metrics
from stepline_control.services import dead_letters, usage
from stepline_control.sessions import driver_connection


async def _hook_workflow(session: AsyncSession, *, principal: Principal, step_id: uuid.UUID
                         ) -> Workflow:
    workflow = await session.scalar(
        select(Workflow)
        .join(WorkflowVersion, (WorkflowVersion.workflow_id == Workflow.id)
              & (WorkflowVersion.version == Workflow.current_version))
        .join(Step, (Step.workflow_version_id == WorkflowVersion.id) & (Step.id == step_id))
        .where(Workflow.account_id == principal.account_id, Workflow.deleted_at.is_(None),
               Step.function == "Webhook")
    )
    if workflow is None:
        raise not_found("webhook step")
    return workflow


async def call_hook(session: AsyncSession, *, principal: Principal, step_id: uuid.UUID,
                    headers: dict[str, str], body: bytes, metrics: Metrics
                    ) -> tuple[uuid.UUID, bool]:
    """Start (or find, for a retried call) the job; its id and whether it is new."""
    workflow = await _hook_workflow(session, principal=principal, step_id=step_id)
    await usage.admit(session, account_id=principal.account_id, workflow=workflow,
                      metrics=metrics)
    if workflow.paused_at is not None:
        raise conflict("this workflow is paused: resume it first", "workflow_paused")
    try:
        call = webhooks.parse(headers, body)
        fired = await webhooks.accept(await driver_connection(session), step_id=step_id,
                                      call=call)
    except MalformedEvent as exc:
        await dead_letters.keep_malformed_call(session, account_id=principal.account_id,
                                               step_id=step_id, headers=headers, body=body,
                                               reason=str(exc))
        raise ApiError(400, "malformed", str(exc)) from exc
    except Rejected as exc:
        raise ApiError(422, "invalid_payload", str(exc), exc.problems) from exc
    except (TriggerRefused, runtime_jobs.StartRefused) as exc:
        raise ApiError(422, "refused", str(exc)) from exc
    if fired.skipped:
        raise conflict(f"not started: {fired.skipped}", "not_started")
    await session.commit()
    if fired.created:
        await runtime_jobs.finish(await driver_connection(session), fired.job_id)
        await session.commit()
        metrics.jobs_started.labels("webhook").inc()
    return fired.job_id, fired.created
