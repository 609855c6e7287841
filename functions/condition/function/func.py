"""Condition: the first branch whose ``when`` holds picks the next step; ``default``
otherwise; with neither, the branch ends. ``when`` is CEL (a sandboxed, non-Turing-
complete language), evaluated over ``payload`` and the packet's ``job``, ``step`` and
``attempt``, in a worker thread bounded by a time-out."""

from __future__ import annotations

import asyncio
from functools import lru_cache
from typing import Any

import cel

from stepline.sdk import CATALOG, ConditionConfig, Context, FunctionHost, PermanentError, Route

EVALUATION_TIMEOUT_S = 1.0


@lru_cache(maxsize=1024)
def compiled(expression: str) -> Any:
    try:
        return cel.compile(expression)
    except ValueError as exc:
        raise PermanentError(f"`when` does not compile: {exc}") from exc


def evaluate(expression: str, variables: dict[str, Any]) -> bool:
    try:
        result = compiled(expression).execute(variables)
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise PermanentError(f"`when` {expression!r} failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(result, bool):
        raise PermanentError(f"`when` {expression!r} gave {result!r}, not a boolean")
    return result


class Condition:
    spec = CATALOG["Condition"]

    async def run(self, ctx: Context[ConditionConfig]) -> Route:
        packet = ctx.packet.model_dump(mode="json")
        variables = {k: packet[k] for k in ("payload", "job", "step", "attempt")}
        for i, branch in enumerate(ctx.config.branches):
            try:
                holds = await asyncio.wait_for(
                    asyncio.to_thread(evaluate, branch.when, variables), EVALUATION_TIMEOUT_S
                )
            except TimeoutError as exc:
                raise PermanentError(
                    f"branches[{i}].when took over {EVALUATION_TIMEOUT_S}s"
                ) from exc
            if holds:
                ctx.log(f"branches[{i}] holds: {branch.when} -> {branch.next}")
                return Route(branch.next, ctx.payload)
        ctx.log(f"no branch holds -> {ctx.config.default}")
        return Route(ctx.config.default, ctx.payload)


def new() -> FunctionHost:
    return FunctionHost(Condition())
