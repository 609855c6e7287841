"""The local ticker: a clock the test moves, a real PostgreSQL with workflows made through
the control plane, and a local HTTP server in the CronJob function's place."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stepline_control.schedules.desired import DesiredSchedule, load_desired
from stepline_control.schedules.events import object_name, ping_event
from stepline_control.schedules.options import ScheduleOptions
from stepline_control.schedules.ticker import Ticker, next_fire, post_tick

from .helpers import ManualClock, Recorder, call, cron_workflow, eventually, replace_schedule

Sessions = async_sessionmaker[AsyncSession]
START = datetime(2025, 3, 1, 3, 57, 40, tzinfo=UTC)
STEP_S = 10


@contextlib.asynccontextmanager
async def running(ticker: Ticker) -> AsyncIterator[Ticker]:
    task = asyncio.create_task(ticker.run())
    try:
        yield ticker
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def walk(clock: ManualClock, until: datetime) -> None:
    """Moves the clock in small steps, each once the ticker is done with the last."""
    while clock.now() < until:
        await eventually(clock.idle, "the ticker asleep")
        clock.set(min(until, clock.now() + timedelta(seconds=STEP_S)))
    await eventually(clock.idle, "the ticker asleep")


def fired(recorder: Recorder) -> list[tuple[str, str]]:
    """(step id, scheduled time) of every tick received, in order."""
    return [(tick["data"]["step_id"], tick["time"]) for tick in recorder.ticks()]


async def step_of(sessions: Sessions, workflow_id: str) -> str:
    [schedule] = [s for s in await load_desired(sessions) if str(s.workflow_id) == workflow_id]
    return str(schedule.step_id)


async def test_one_tick_per_scheduled_minute_in_the_steps_time_zone(
        api: httpx.AsyncClient, sessions: Sessions, recorder: Recorder,
        options: ScheduleOptions) -> None:
    minutely = await cron_workflow(api, "* * * * *", "America/Sao_Paulo", name="minutely")
    kolkata = await cron_workflow(api, "30 9 * * *", "Asia/Kolkata", name="09:30 in Kolkata")
    paused = await cron_workflow(api, "* * * * *", "UTC", name="paused")
    await call(api, "POST", f"/v1/workflows/{paused}/pause")
    minutely_step, kolkata_step = await step_of(sessions, minutely), await step_of(sessions,
                                                                                   kolkata)
    clock = ManualClock(START)
    ticker = Ticker(load=partial(load_desired, sessions), url=recorder.url, options=options,
                    clock=clock)
    async with running(ticker):
        await walk(clock, datetime(2025, 3, 1, 4, 0, 50, tzinfo=UTC))
        await eventually(lambda: len(recorder.requests) >= 4, "four ticks")
        await asyncio.sleep(0.2)

    assert sorted(fired(recorder)) == sorted([
        (minutely_step, "2025-03-01T03:58:00Z"),
        (minutely_step, "2025-03-01T03:59:00Z"),
        (minutely_step, "2025-03-01T04:00:00Z"),
        (kolkata_step, "2025-03-01T04:00:00Z"),  # 09:30 in Kolkata (UTC+05:30)
    ])
    ticks = recorder.ticks()
    assert len({tick["id"] for tick in ticks}) == 4
    for tick in ticks:
        assert tick["type"] == "dev.knative.sources.ping"
        assert tick["specversion"] == "1.0"
        assert tick["content-type"] == "application/json"
        assert tick["source"] == ("/apis/v1/namespaces/stepline/pingsources/"
                                  + object_name(tick["data"]["step_id"]))
    assert {tick["data"]["workflow_id"] for tick in ticks} == {minutely, kolkata}


async def test_the_ticker_follows_changed_paused_resumed_and_deleted_workflows(
        api: httpx.AsyncClient, sessions: Sessions, recorder: Recorder,
        options: ScheduleOptions) -> None:
    first = await cron_workflow(api, "* * * * *", "UTC", name="first")
    second = await cron_workflow(api, "0 12 * * *", "UTC", name="second")
    first_step, second_step = await step_of(sessions, first), await step_of(sessions, second)
    clock = ManualClock(START)
    ticker = Ticker(load=partial(load_desired, sessions), url=recorder.url, options=options,
                    clock=clock)

    def at(minute: int) -> str:
        return f"2025-03-01T04:{minute:02d}:00Z"

    def next_at(minute: int) -> datetime:
        return datetime(2025, 3, 1, 4, minute, tzinfo=UTC)

    async with running(ticker):
        await walk(clock, datetime(2025, 3, 1, 3, 58, 5, tzinfo=UTC))
        await eventually(lambda: fired(recorder) == [(first_step, "2025-03-01T03:58:00Z")],
                         "the first tick")
        recorder.requests.clear()

        # paused: found at the next refresh, without a poke
        await call(api, "POST", f"/v1/workflows/{first}/pause")
        await walk(clock, datetime(2025, 3, 1, 3, 59, 50, tzinfo=UTC))
        assert ticker.upcoming == {uuid.UUID(second_step): datetime(2025, 3, 1, 12, tzinfo=UTC)}

        # changed, resumed, deleted: followed at once when poked, the clock standing still
        await replace_schedule(api, second, "* * * * *", "UTC")
        ticker.poke()
        await eventually(lambda: ticker.upcoming == {uuid.UUID(second_step): next_at(0)},
                         "the change")
        await walk(clock, datetime(2025, 3, 1, 4, 0, 5, tzinfo=UTC))
        await eventually(lambda: fired(recorder) == [(second_step, at(0))], "its tick")

        await call(api, "POST", f"/v1/workflows/{first}/resume")
        ticker.poke()
        await eventually(lambda: len(ticker.upcoming) == 2, "the resume")
        await walk(clock, datetime(2025, 3, 1, 4, 1, 5, tzinfo=UTC))
        await eventually(lambda: len(recorder.requests) == 3, "both tick")

        await call(api, "DELETE", f"/v1/workflows/{second}")
        ticker.poke()
        await eventually(lambda: list(ticker.upcoming) == [uuid.UUID(first_step)], "the delete")
        await walk(clock, datetime(2025, 3, 1, 4, 2, 5, tzinfo=UTC))
        await eventually(lambda: len(recorder.requests) == 4, "one ticks")
        await asyncio.sleep(0.2)

    assert sorted(fired(recorder)) == sorted([
        (second_step, at(0)), (first_step, at(1)), (second_step, at(1)), (first_step, at(2))])


async def test_a_tick_is_retried_with_the_same_event(recorder: Recorder) -> None:
    headers, body = ping_event(uuid.uuid4(), uuid.uuid4(), START, "stepline", "stepline-x")
    async with httpx.AsyncClient() as http:
        recorder.statuses = [503, 502]
        assert await post_tick(http, recorder.url, headers, body, delays=(0.01,) * 3)
        assert [h["ce-id"] for h, _ in recorder.requests] == [headers["ce-id"]] * 3

        recorder.requests.clear()
        recorder.statuses = [400]
        assert not await post_tick(http, recorder.url, headers, body, delays=(0.01,) * 3)
        assert len(recorder.requests) == 1, "a 4xx is the event's fault: not retried"

        recorder.statuses = [503] * 10
        assert not await post_tick(http, recorder.url, headers, body, delays=(0.01,) * 2)

        closed = Recorder()  # bound, never served: connections are refused
        closed.server.server_close()
        assert not await post_tick(http, closed.url, headers, body, delays=(0.01,) * 2)


def schedule(expression: str, timezone: str = "UTC", paused: bool = False) -> DesiredSchedule:
    return DesiredSchedule(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), expression, timezone,
                           paused)


def ticker_for(options: ScheduleOptions) -> Ticker:
    async def nothing() -> list[DesiredSchedule]:
        return []

    return Ticker(load=nothing, url="http://unused", options=options)


def test_ticks_missed_beyond_the_grace_are_skipped(options: ScheduleOptions) -> None:
    ticker = ticker_for(options)
    ticker.update([schedule("*/5 * * * *")], START)
    assert ticker.take_due(START + timedelta(minutes=2, seconds=50)) != []  # 04:00, 50 s late
    assert ticker.take_due(START + timedelta(hours=3)) == [], "hours late: skipped"
    assert ticker.next_due() == datetime(2025, 3, 1, 7, 0, tzinfo=UTC)


def test_a_bad_schedule_is_left_out_and_the_rest_keep_ticking(options: ScheduleOptions) -> None:
    ticker = ticker_for(options)
    good = schedule("* * * * *")
    ticker.update([schedule("not cron"), schedule("* * * * *", "Mars/Olympus"), good], START)
    assert [s.step_id for s, _ in ticker.take_due(START + timedelta(seconds=20))] == [
        good.step_id]


@pytest.mark.parametrize(("expression", "timezone", "after", "expected"), [
    ("30 9 * * *", "Asia/Kolkata", START, "2025-03-01T04:00:00+00:00"),
    ("0 9 * * *", "America/Sao_Paulo", START, "2025-03-01T12:00:00+00:00"),
    # Lisbon moves to summer time on 2025-03-30: 09:00 is 09:00 UTC before, 08:00 after
    ("0 9 * * *", "Europe/Lisbon", datetime(2025, 3, 29, 10, tzinfo=UTC),
     "2025-03-30T08:00:00+00:00"),
    ("*/5 * * * *", "UTC", datetime(2025, 3, 1, 4, 0, tzinfo=UTC), "2025-03-01T04:05:00+00:00"),
])
def test_next_fire_is_in_the_steps_time_zone(expression: str, timezone: str, after: datetime,
                                             expected: str) -> None:
    assert next_fire(expression, timezone, after).isoformat() == expected


def test_paused_schedules_do_not_tick(options: ScheduleOptions) -> None:
    ticker = ticker_for(options)
    ticker.update([schedule("* * * * *", paused=True)], START)
    assert ticker.next_due() is None
    assert ticker.take_due(START + timedelta(minutes=5)) == []
