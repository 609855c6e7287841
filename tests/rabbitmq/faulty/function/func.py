"""A test function: the real Database.query, except that it answers 500 (an unexpected
failure, which the transport does not retry) for the item whose ``id`` is
``STEPLINE_TEST_FAIL_ID``. Served by func-python like any function folder."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from stepline.host import respond

REAL_FOLDER = Path(__file__).resolve().parents[4] / "functions" / "database-query"


def _real_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "real_database_query", REAL_FOLDER / "function" / "func.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FailingOnce:
    def __init__(self, host: Any, fail_id: int) -> None:
        self.host, self.fail_id = host, fail_id

    def start(self, cfg: dict[str, str]) -> None:
        self.host.start(cfg)

    def stop(self) -> None:
        self.host.stop()

    def alive(self) -> bool:
        return self.host.alive()

    def ready(self) -> bool:
        return self.host.ready()

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        data = scope["event"].get_data()
        payload = data.get("payload") if isinstance(data, dict) else None
        if isinstance(payload, dict) and payload.get("id") == self.fail_id:
            body = {"error": {"type": "RuntimeError", "message": "the test's one failure"}}
            await respond(send, 500, body)
            return
        await self.host.handle(scope, receive, send)


def new() -> FailingOnce:
    return FailingOnce(_real_module().new(), int(os.environ["STEPLINE_TEST_FAIL_ID"]))
