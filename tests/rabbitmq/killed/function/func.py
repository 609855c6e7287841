"""A test function: a real function folder's handler (``STEPLINE_TEST_REAL_FOLDER``,
say ``database-query``), except that its server SIGKILLs itself right after the handler
returned for an item whose ``id`` is in ``STEPLINE_TEST_KILL_IDS`` — after the effect
(the customer's commit, the HTTP call) and before the platform's own commit — once per
item: a file in ``STEPLINE_TEST_KILL_MARKS`` remembers it. Served by func-python like
any function folder."""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
from pathlib import Path
from typing import Any

from stepline.sdk import Context, FunctionHost

FUNCTIONS = Path(__file__).resolve().parents[4] / "functions"


def _real_handler(slug: str) -> Any:
    name = f"real_{slug.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(name, FUNCTIONS / slug / "function" / "func.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.new().handler


class KilledAfterTheEffect:
    def __init__(self, real: Any, ids: set[int], marks: Path) -> None:
        self.real, self.ids, self.marks = real, ids, marks
        self.spec = real.spec

    def in_transaction(self, config: Any) -> bool:
        check = getattr(self.real, "in_transaction", None)
        return bool(check and check(config))

    async def run(self, ctx: Context[Any]) -> Any:
        result = await self.real.run(ctx)
        item = ctx.payload.get("id") if isinstance(ctx.payload, dict) else None
        mark = self.marks / str(item)
        if item in self.ids and not mark.exists():
            mark.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return result


def new() -> FunctionHost:
    ids = {int(i) for i in os.environ["STEPLINE_TEST_KILL_IDS"].split(",")}
    return FunctionHost(KilledAfterTheEffect(
        _real_handler(os.environ["STEPLINE_TEST_REAL_FOLDER"]), ids,
        Path(os.environ["STEPLINE_TEST_KILL_MARKS"])))
