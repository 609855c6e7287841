"""Service.call: the one handler of every published service. A step names a service
(``Acme.enrichLead``); the relay routes its messages here. The first delivery calls the
service — a child job in the publisher's account, running the version the service
pins — and answers "waiting"; the child's end delivers the step again, and the child's
result becomes the step's output, as with Workflow.call. The caller learns how the call
ended, never what ran inside it."""

from __future__ import annotations

from typing import Any

from stepline.sdk import (
    CATALOG,
    Context,
    FunctionHost,
    ServiceCallConfig,
    Waiting,
)


class ServiceCall:
    spec = CATALOG["Service.call"]

    def serves(self, function: str) -> bool:
        """Every service: a name that is not a built-in function (the call itself finds
        out whether such a service is published)."""
        return function not in CATALOG

    async def run(self, ctx: Context[ServiceCallConfig]) -> Any:
        service = ctx.step.function
        child = await ctx.child_job()
        if child is None:
            payload = ctx.payload if ctx.config.input is None else ctx.config.input
            started = await ctx.start_service(service, payload)
            return Waiting(f"called {service} (job {started.job_id} of its publisher)")
        result = child.result(f"the call to {service}")
        if child.status == "succeeded":
            ctx.log(f"{service} answered with {len(child.outputs)} result(s)")
        return result


def new() -> FunctionHost:
    return FunctionHost(ServiceCall())
