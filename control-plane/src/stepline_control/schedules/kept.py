"""A reconciler kept on the app's state for the control plane's lifespan: built, run as
a task, poked after a workflow or an account changed, cancelled and closed with the app.
The schedules and the queue sources are kept so, each under a name of its own
(``state.<name>`` and ``state.<name>_task``)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Runner(Protocol):
    async def run(self) -> None: ...

    def poke(self) -> None: ...

    async def aclose(self) -> None: ...


class Kept:
    def __init__(self, name: str, task_name: str) -> None:
        self.name, self.task_name = name, task_name

    def start(self, state: Any, runner: Runner | None, *,
              started: str) -> asyncio.Task[None] | None:
        """Run ``runner`` (None: nothing to run here) as a task; both kept on ``state``."""
        task = None
        if runner is not None:
            task = asyncio.create_task(runner.run(), name=self.task_name)
            log.info(started)
        setattr(state, self.name, runner)
        setattr(state, f"{self.name}_task", task)
        return task

    def poke(self, state: Any) -> None:
        runner = getattr(state, self.name, None)
        if runner is not None:
            runner.poke()

    async def stop(self, state: Any) -> None:
        task = getattr(state, f"{self.name}_task", None)
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("the %s task had failed", self.name)
        runner = getattr(state, self.name, None)
        if runner is not None:
            await runner.aclose()
        setattr(state, self.name, None)
        setattr(state, f"{self.name}_task", None)
