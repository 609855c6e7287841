"""The local ticker (``STEPLINE_SCHEDULER=local``, the one-machine default): what a
PingSource does, in this process. At each scheduled minute of each running schedule
(croniter, 5 fields, the step's IANA time zone) it POSTs the tick's CloudEvent to the
CronJob function, and every ``every`` seconds an Email step's to the Email function
(which polls the mailbox; here the interval need not be whole minutes); it re-reads
the desired schedules every ``refresh_s`` and at once when poked, so created, changed,
paused and deleted workflows follow.

Time comes from an injected :class:`Clock`, so tests move it instead of sleeping. A tick
missed by more than ``misfire_grace_s`` (the machine slept) is skipped, as a PingSource
skips the ticks it was not running for; a retry of one tick reuses its event id, and the
function starts one job per step and minute however often a tick arrives."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from croniter import CroniterError, croniter

from stepline_control.schedules.desired import DesiredSchedule
from stepline_control.schedules.events import object_name, ping_event
from stepline_control.schedules.options import ScheduleOptions

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({408, 425, 429})
LoadDesired = Callable[[], Awaitable[list[DesiredSchedule]]]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""

    async def sleep_until(self, when: datetime) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        await asyncio.sleep(max(0.0, (when - self.now()).total_seconds()))


def next_fire(schedule: str, timezone: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` that ``schedule`` names in ``timezone``
    (in UTC)."""
    local = after.astimezone(ZoneInfo(timezone))
    return croniter(schedule, local).get_next(datetime).astimezone(UTC)


def next_of(schedule: DesiredSchedule, after: datetime) -> datetime:
    """A schedule's next tick after ``after``: its interval's, or its cron's."""
    if schedule.every_s is not None:
        return after + timedelta(seconds=schedule.every_s)
    return next_fire(schedule.schedule, schedule.timezone, after)


@dataclass
class Entry:
    schedule: DesiredSchedule
    next_at: datetime


def retryable(status: int) -> bool:
    return status in RETRYABLE_STATUSES or status >= 500


async def post_tick(http: httpx.AsyncClient, url: str, headers: dict[str, str], body: bytes,
                    *, delays: Iterable[float]) -> bool:
    """POSTs one tick, retrying connection errors, 429 and 5xx with the given delays;
    every attempt carries the same event."""
    waits = [*delays, None]
    for attempt, delay in enumerate(waits, start=1):
        try:
            response = await http.post(url, headers=headers, content=body)
            if response.is_success:
                return True
            reason = f"HTTP {response.status_code}: {response.text[:200]}"
            if not retryable(response.status_code):
                delay = None
        except httpx.TransportError as exc:
            reason = f"{type(exc).__name__}: {exc}"
        if delay is None:
            log.error("tick %s not delivered after %d attempts: %s",
                      headers.get("ce-id"), attempt, reason)
            return False
        log.warning("tick %s attempt %d failed (%s); retrying in %.1fs",
                    headers.get("ce-id"), attempt, reason, delay)
        await asyncio.sleep(delay)
    return False


class Ticker:
    def __init__(self, *, load: LoadDesired, url: str | None, options: ScheduleOptions,
                 clock: Clock | None = None, urls: dict[str, str] | None = None) -> None:
        """``url``: the CronJob function's; ``urls``: every ticked function's (Email)."""
        self._load, self._url, self._options = load, url, options
        self._urls = {**(urls or {}), **({"CronJob": url} if url else {})}
        self._clock = clock or SystemClock()
        self._entries: dict[uuid.UUID, Entry] = {}
        self._wake = asyncio.Event()
        self._refresh_now = True
        self._sends: set[asyncio.Task[bool]] = set()

    def poke(self) -> None:
        """Re-read the schedules now (a workflow changed)."""
        self._refresh_now = True
        self._wake.set()

    async def aclose(self) -> None:
        for task in self._sends:
            task.cancel()
        await asyncio.gather(*self._sends, return_exceptions=True)

    def update(self, schedules: Iterable[DesiredSchedule], now: datetime) -> None:
        """Follow the desired schedules; a new or changed one counts from ``now``."""
        running = {s.step_id: s for s in schedules
                   if not s.paused and s.function in self._urls}
        for step_id in self._entries.keys() - running.keys():
            del self._entries[step_id]
        for step_id, schedule in running.items():
            entry = self._entries.get(step_id)
            if entry is not None and (entry.schedule.schedule, entry.schedule.timezone,
                                      entry.schedule.every_s) == (
                    schedule.schedule, schedule.timezone, schedule.every_s):
                entry.schedule = schedule
                continue
            try:
                self._entries[step_id] = Entry(schedule, next_of(schedule, now))
            except (CroniterError, ZoneInfoNotFoundError, ValueError, KeyError) as exc:
                self._entries.pop(step_id, None)
                log.error("step %s: bad schedule %r in %r: %s", step_id, schedule.schedule,
                          schedule.timezone, exc)

    def take_due(self, now: datetime) -> list[tuple[DesiredSchedule, datetime]]:
        """The ticks due at ``now``, each once; their entries move to the next time."""
        grace = timedelta(seconds=self._options.misfire_grace_s)
        due = []
        for entry in self._entries.values():
            s = entry.schedule
            if entry.next_at > now:
                continue
            if now - entry.next_at <= grace:
                due.append((s, entry.next_at))
                entry.next_at = next_of(s, entry.next_at)
            if entry.next_at <= now:  # missed ticks: skip to the next one to come
                log.warning("step %s: ticks up to %s missed", s.step_id, now.isoformat())
                entry.next_at = next_of(s, now)
        return due

    @property
    def upcoming(self) -> dict[uuid.UUID, datetime]:
        """Each running schedule's next tick, by step id."""
        return {step_id: entry.next_at for step_id, entry in self._entries.items()}

    def next_due(self) -> datetime | None:
        return min((entry.next_at for entry in self._entries.values()), default=None)

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=self._options.send_timeout_s) as http:
            try:
                await self._loop(http)
            finally:
                await self.aclose()

    async def _loop(self, http: httpx.AsyncClient) -> None:
        refreshed_at: datetime | None = None
        while True:
            self._wake.clear()
            now = self._clock.now()
            refresh_at = (refreshed_at + timedelta(seconds=self._options.refresh_s)
                          if refreshed_at else now)
            if self._refresh_now or now >= refresh_at:
                self._refresh_now = False
                await self._refresh(now)
                refreshed_at = now
                refresh_at = now + timedelta(seconds=self._options.refresh_s)
            for schedule, scheduled_at in self.take_due(now):
                self._send(http, schedule, scheduled_at)
            wake_at = min(filter(None, (self.next_due(), refresh_at)))
            await self._sleep_until(wake_at)

    async def _refresh(self, now: datetime) -> None:
        try:
            self.update(await self._load(), now)
        except Exception:  # keep ticking what we know; the CronJob function re-checks
            log.exception("could not read the schedules; keeping the previous ones")

    async def _sleep_until(self, when: datetime) -> None:
        sleeper = asyncio.ensure_future(self._clock.sleep_until(when))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _send(self, http: httpx.AsyncClient, schedule: DesiredSchedule,
              scheduled_at: datetime) -> None:
        name = object_name(schedule.step_id)
        headers, body = ping_event(schedule.step_id, schedule.workflow_id, scheduled_at,
                                   self._options.namespace, name)
        log.info("tick of step %s for %s", schedule.step_id, scheduled_at.isoformat())
        task = asyncio.create_task(post_tick(http, self._urls[schedule.function], headers,
                                             body, delays=self._options.retry_delays_s))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)
