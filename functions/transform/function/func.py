"""Transform: the payload reshaped by the step's JMESPath expression, evaluated in a
worker process bounded in time and memory (`stepline.bounded`)."""

from __future__ import annotations

from typing import Any

from stepline.sdk import CATALOG, Context, FunctionHost, TransformConfig, bounded_jmespath


class Transform:
    spec = CATALOG["Transform"]

    async def run(self, ctx: Context[TransformConfig]) -> Any:
        return await bounded_jmespath(ctx.config.expression, ctx.payload,
                                      what="config.expression")


def new() -> FunctionHost:
    return FunctionHost(Transform())
