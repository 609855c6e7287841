"""Transform: the payload reshaped by the step's JMESPath expression, evaluated in a
worker process bounded in time and memory (`stepline.bounded`)."""

from __future__ import annotations

from typing import Any

from stepline import bounded
from stepline.catalog import CATALOG
from stepline.host import FunctionHost
from stepline.step import Context


class Transform:
    spec = CATALOG["Transform"]

    async def run(self, ctx: Context) -> Any:
        return await bounded.jmespath(ctx.config["expression"], ctx.payload,
                                      what="config.expression")


def new() -> FunctionHost:
    return FunctionHost(Transform())
