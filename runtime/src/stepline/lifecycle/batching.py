"""Group commit: calls that arrive together go to the database as one.

Each caller awaits its own answer. A flush starts as soon as the previous one returned —
no timer, so a lone call goes out at once and waits for nothing; under load, whatever
queued meanwhile goes out together, in one round trip and one commit. A flush that fails
for a reason of its own (not the database going away) is tried again one call at a time,
so a bad call fails alone and never its neighbours."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from stepline.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
MAX_BATCH = 256


class Batcher(Generic[T, R]):
    def __init__(self, flush: Callable[[Sequence[T]], Awaitable[Sequence[R]]], *,
                 max_batch: int = MAX_BATCH, name: str = "batch") -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._name = name
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._running: asyncio.Task[None] | None = None
        self.flushes = self.calls = 0  # how well calls are grouped, for the curious

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._drain(), name=f"{self._name}-flush")
        return await future

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:self._max_batch], self._queue[self._max_batch:]
            await self._send(batch)

    async def _send(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        self.flushes += 1
        self.calls += len(batch)
        try:
            results = await self._flush([item for item, _ in batch])
        except DatabaseUnavailable as exc:
            for _, future in batch:
                _settle(future, exc=exc)
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc=exc)
                return
            log.warning("%s of %d failed (%s): each alone now", self._name, len(batch), exc)
            for one in batch:
                await self._send([one])
        else:
            for (_, future), result in zip(batch, results, strict=True):
                _settle(future, result=result)


def _settle(future: asyncio.Future, *, result: object = None,
            exc: BaseException | None = None) -> None:
    if future.done():  # its caller went away (cancelled): nobody to tell
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
