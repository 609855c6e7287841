"""Workflow.call: another workflow of the account used as a step. The first delivery
starts a child job (once per calling process) and answers "waiting": the process stays
running and no worker waits for it. When the child job ends, the runtime delivers the
calling process again; this time the child's result becomes the step's output — the
outputs of the child's last steps (one output, or an array of them when several) — or,
if the child failed, the step fails. Calls nest only so deep, so a workflow cannot call
itself for ever."""

from __future__ import annotations

import uuid
from typing import Any

from stepline.sdk import (
    CATALOG,
    Context,
    FunctionHost,
    PermanentError,
    Waiting,
    WorkflowCallConfig,
)


class WorkflowCall:
    spec = CATALOG["Workflow.call"]

    async def run(self, ctx: Context[WorkflowCallConfig]) -> Any:
        child = await ctx.child_job()
        if child is None:
            try:
                workflow_id = uuid.UUID(ctx.config.workflow_id)
            except ValueError as exc:
                raise PermanentError("config.workflow_id is not a workflow id") from exc
            payload = ctx.payload if ctx.config.payload is None else ctx.config.payload
            started = await ctx.start_child(workflow_id, payload)
            return Waiting(f"started child job {started.job_id}")
        result = child.result(f"child job {child.id}")
        if child.status == "succeeded":
            ctx.log(f"child job {child.id} succeeded with {len(child.outputs)} result(s)")
        return result


def new() -> FunctionHost:
    return FunctionHost(WorkflowCall())
