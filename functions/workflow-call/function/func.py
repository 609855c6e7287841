"""Workflow.call: another workflow of the account used as a step. The first delivery
starts a child job (idempotent per calling process) and answers "waiting": the process
stays running and no worker waits for it. When the child job ends, the runtime delivers
the calling process again; this time the child's result becomes the step's output — the
outputs of the child's last steps (one output, or an array of them when several) — or,
if the child failed, the step fails. Calls nest at most ``MAX_DEPTH`` deep, so a
workflow cannot call itself forever."""

from __future__ import annotations

import uuid
from typing import Any

from stepline.catalog import CATALOG
from stepline.db import connection, fetch_all, fetch_one
from stepline.errors import PermanentError
from stepline.host import FunctionHost
from stepline.jobs import StartRefused, start_job
from stepline.step import Context, Waiting, version_from_rows

MAX_DEPTH = 5


class WorkflowCall:
    spec = CATALOG["Workflow.call"]

    async def run(self, ctx: Context) -> Any:
        async with connection(ctx.runtime.pool) as conn:
            child = await fetch_one(conn, "child_job", process_id=ctx.packet.process.id)
            if child is None:
                return await self._start_child(ctx, conn)
            if child["status"] == "running":
                return Waiting(f"child job {child['id']} still running")
            if child["status"] != "succeeded":
                raise PermanentError(f"child job {child['id']} ended {child['status']}")
            outputs = [r["output"] for r in await fetch_all(conn, "job_result", job_id=child["id"])]
        ctx.log(f"child job {child['id']} succeeded with {len(outputs)} result(s)")
        return outputs[0] if len(outputs) == 1 else outputs

    async def _start_child(self, ctx: Context, conn) -> Waiting:
        depth = (await fetch_one(conn, "job_depth", job_id=ctx.packet.job.id))["depth"] + 1
        if depth > MAX_DEPTH:
            raise PermanentError(f"calls nest deeper than {MAX_DEPTH}: refused")
        try:
            workflow_id = uuid.UUID(str(ctx.config["workflow_id"]))
        except ValueError as exc:
            raise PermanentError("config.workflow_id is not a workflow id") from exc
        target = await fetch_one(
            conn, "workflow_current", workflow_id=workflow_id, account_id=ctx.packet.account.id
        )
        if target is None:
            raise PermanentError(f"workflow {workflow_id} does not exist in this account")
        rows = await fetch_all(
            conn, "version_steps", workflow_id=workflow_id, version=target["current_version"]
        )
        payload = ctx.config.get("payload")
        async with conn.transaction():
            try:
                started = await start_job(
                    conn,
                    account_id=ctx.packet.account.id,
                    workflow_id=workflow_id,
                    version_number=target["current_version"],
                    version=version_from_rows(rows),
                    entry_key=target["entry_step_key"],
                    payload=ctx.payload if payload is None else payload,
                    trigger="call",
                    idempotency_key=f"call:{ctx.packet.process.id}",
                    parent_process_id=ctx.packet.process.id,
                    depth=depth,
                )
            except StartRefused as exc:
                raise PermanentError(f"the child job cannot start: {exc}") from exc
        await ctx.runtime.finish_job(started.id)  # a child with nothing to do ends at once
        return Waiting(f"started child job {started.id} (depth {depth})")


def new() -> FunctionHost:
    return FunctionHost(WorkflowCall())
