"""Transform: the payload reshaped by the step's JMESPath expression."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

from stepline.sdk import CATALOG, Context, FunctionHost, PermanentError, TransformConfig


@lru_cache(maxsize=256)
def compiled(expression: str) -> Any:
    try:
        return jmespath.compile(expression)
    except JMESPathError as exc:
        raise PermanentError(f"config.expression does not compile: {exc}") from exc


class Transform:
    spec = CATALOG["Transform"]

    async def run(self, ctx: Context[TransformConfig]) -> Any:
        try:
            return compiled(ctx.config.expression).search(ctx.payload)
        except JMESPathError as exc:
            raise PermanentError(f"config.expression failed: {exc}") from exc


def new() -> FunctionHost:
    return FunctionHost(Transform())
