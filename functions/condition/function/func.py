"""Condition: the first branch whose ``when`` holds picks the next step; ``default``
otherwise; with neither, the branch ends. ``when`` is CEL (a sandboxed, non-Turing-
complete language), evaluated over ``payload`` and the packet's ``job``, ``step`` and
``attempt``, in a worker process bounded in time and memory (`stepline.bounded`):
a runaway ``when`` fails the step, it cannot hold the function server up."""

from __future__ import annotations

from typing import Any

from stepline.sdk import (
    CATALOG,
    ConditionConfig,
    Context,
    FunctionHost,
    PermanentError,
    Route,
    bounded_cel,
)


async def evaluate(expression: str, variables: dict[str, Any], *, what: str) -> bool:
    result = await bounded_cel(expression, variables, what=what)
    if not isinstance(result, bool):
        raise PermanentError(f"`when` {expression!r} gave {result!r}, not a boolean")
    return result


class Condition:
    spec = CATALOG["Condition"]

    async def run(self, ctx: Context[ConditionConfig]) -> Route:
        packet = ctx.packet.model_dump(mode="json")
        variables = {k: packet[k] for k in ("payload", "job", "step", "attempt")}
        for i, branch in enumerate(ctx.config.branches):
            if await evaluate(branch.when, variables, what=f"branches[{i}].when"):
                ctx.log(f"branches[{i}] holds: {branch.when} -> {branch.next}")
                return Route(branch.next, ctx.payload)
        ctx.log(f"no branch holds -> {ctx.config.default}")
        return Route(ctx.config.default, ctx.payload)


def new() -> FunctionHost:
    return FunctionHost(Condition())
