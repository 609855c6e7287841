"""The worker processes: each evaluation is sent (pickled) to an idle worker over a
pipe and awaited without blocking the event loop; a worker that overruns its deadline is
killed and replaced, one that hits its memory limit answers so (or dies) and is replaced.

Loop-agnostic on purpose: a worker is a plain ``subprocess.Popen`` whose answer is
awaited with ``loop.add_reader`` on whichever loop calls, so one process-wide pool serves
the function host, the control plane and tests that open a new loop each."""

from __future__ import annotations

import asyncio
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stepline.errors import PermanentError

HEADER = struct.Struct("!Q")
READY = b"R"
READ_CHUNK = 1 << 16
WORKER_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
START_TIMEOUT_S = 60.0  # a cold start imports the evaluators' libraries; never a runaway


class Overrun(PermanentError):
    """An evaluation went past its time or memory limit (or crashed its worker)."""


class WorkerLost(RuntimeError):
    """The worker exited before answering."""


@dataclass(frozen=True)
class Limits:
    """Per evaluation: ``timeout_s`` of wall-clock time, ``memory_mb`` of address space
    for the worker (its own baseline is ~70 MiB); ``workers`` evaluate at once. Read from
    ``STEPLINE_SANDBOX_*`` (:class:`stepline.settings.Settings`)."""

    timeout_s: float = 1.0
    memory_mb: int = 256
    workers: int = 2


DEFAULT_LIMITS = Limits()


class Worker:
    """One child process: reads ``(function, args, kwargs)``, answers ``(status, value)``."""

    def __init__(self, *, memory_mb: int, preload: tuple[str, ...]) -> None:
        # what the worker needs to import, and nothing of the parent's secrets: should an
        # expression ever escape its sandbox, there is no database URL or key to find
        env = {name: os.environ[name] for name in WORKER_ENV if name in os.environ}
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stepline.bounded.worker", str(memory_mb), *preload],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, bufsize=0)
        self._out = self.process.stdout.fileno()
        self._in = self.process.stdin.fileno()
        os.set_blocking(self._out, False)
        os.set_blocking(self._in, False)
        self.ready = False

    async def start(self) -> None:
        if not self.ready:
            try:
                await asyncio.wait_for(self._read_at_least(len(READY)), START_TIMEOUT_S)
            except WorkerLost as exc:
                raise RuntimeError("a sandbox worker exited as it started (see its "
                                   "standard error)") from exc
            self.ready = True

    async def call(self, request: bytes) -> tuple[str, Any]:
        await self._write(HEADER.pack(len(request)) + request)
        answer = await self._read_at_least(HEADER.size)
        (size,) = HEADER.unpack_from(answer)
        if len(answer) < HEADER.size + size:
            answer += await self._read_at_least(HEADER.size + size - len(answer))
        return pickle.loads(memoryview(answer)[HEADER.size:])

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        self.process.stdin.close()
        self.process.stdout.close()

    async def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._in, view):]
            except BlockingIOError:
                await self._wait(asyncio.get_running_loop().add_writer, self._in)
            except BrokenPipeError as exc:
                raise WorkerLost("the worker exited") from exc

    async def _read_at_least(self, size: int) -> bytearray:
        """``size`` bytes or more: whatever the pipe holds (one answer at a time is in
        flight, so nothing read belongs to another)."""
        buffer = bytearray()
        while len(buffer) < size:
            try:
                chunk = os.read(self._out, max(READ_CHUNK, size - len(buffer)))
            except BlockingIOError:
                await self._wait(asyncio.get_running_loop().add_reader, self._out)
                continue
            if not chunk:
                raise WorkerLost("the worker exited")
            buffer += chunk
        return buffer

    @staticmethod
    async def _wait(add: Callable[..., None], fd: int) -> None:
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        add(fd, lambda: ready.done() or ready.set_result(None))
        remove = loop.remove_writer if add == loop.add_writer else loop.remove_reader
        try:
            await ready
        finally:
            remove(fd)


class Pool:
    """At most ``limits.workers`` workers, started on first use. A call waits for an idle
    worker (a runaway holds one for at most ``timeout_s``), then for its answer."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS, *, preload: tuple[str, ...] = ()) -> None:
        self.limits, self.preload = limits, preload
        self._idle: list[Worker] = []
        self._started = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False

    async def run(self, fn: Callable[..., Any], *args: Any, what: str,
                  timeout_s: float | None = None, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in a worker: its value, or its exception re-raised;
        :class:`Overrun` naming ``what`` past the limits."""
        timeout_s = self.limits.timeout_s if timeout_s is None else timeout_s
        try:
            request = pickle.dumps((fn, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        except RecursionError:
            raise PermanentError(f"{what}: the data nests too deeply to evaluate") from None
        worker = await self._acquire()
        try:
            await worker.start()  # a fresh worker's imports are not the evaluation's time
        except BaseException:
            self._discard(worker)
            raise
        try:
            async with asyncio.timeout(timeout_s):  # no task of its own: cheaper than wait_for
                status, value = await worker.call(request)
        except TimeoutError:
            self._discard(worker)
            raise Overrun(f"{what} exceeded {timeout_s:g} s") from None
        except WorkerLost:
            self._discard(worker)
            raise Overrun(f"{what} exceeded the memory limit of {self.limits.memory_mb} MiB "
                          "(its worker died)") from None
        except BaseException:  # cancelled mid-call: the worker's answer would be stale
            self._discard(worker)
            raise
        self._release(worker)
        if status == "memory":
            raise Overrun(f"{what} exceeded the memory limit of {self.limits.memory_mb} MiB")
        if status == "error":
            raise value
        return value

    def close(self) -> None:
        with self._lock:
            idle, self._idle, self._started = self._idle, [], 0
            self._closed = True
        for worker in idle:
            worker.kill()

    async def _acquire(self) -> Worker:
        self._after_fork()
        while True:
            with self._lock:
                if not self._idle and self._started < self.limits.workers:
                    self._idle.append(self._spawn())
                if self._idle:
                    return self._idle.pop(0)
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                self._wake_one()  # a wake-up this waiter took must reach another
                raise

    def _spawn(self) -> Worker:
        """A new worker (under the lock): it imports while nobody waits for it."""
        self._started += 1
        return Worker(memory_mb=self.limits.memory_mb, preload=self.preload)

    def _release(self, worker: Worker) -> None:
        with self._lock:
            if self._closed:
                worker.kill()
            else:
                self._idle.append(worker)
        self._wake_one()

    def _discard(self, worker: Worker) -> None:
        """Kill ``worker`` and start its replacement at once, so that the next call
        does not wait for a cold start."""
        worker.kill()
        with self._lock:
            self._started -= 1
            if not self._closed:
                self._idle.append(self._spawn())
        self._wake_one()

    def _wake_one(self) -> None:
        with self._lock:
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.get_loop().call_soon_threadsafe(_set, waiter)
                    return

    def _after_fork(self) -> None:
        # a forked child shares its parent's workers' pipes: it starts its own
        if os.getpid() != self._pid:
            self._idle, self._started, self._waiters = [], 0, deque()
            self._lock, self._pid = threading.Lock(), os.getpid()


def _set(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
