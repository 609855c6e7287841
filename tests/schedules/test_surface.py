"""What the control plane wires: start, poke and stop, for each STEPLINE_SCHEDULER."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stepline.settings import Settings
from stepline_control import schedules
from stepline_control.schedules.events import object_name
from stepline_control.schedules.kube import KubeApi
from stepline_control.schedules.options import ScheduleOptions
from stepline_control.schedules.reconciler import Reconciler
from stepline_control.schedules.ticker import Ticker

from .helpers import Recorder, cron_workflow, eventually, schedule_of, stored

Sessions = async_sessionmaker[AsyncSession]


async def test_local_without_a_cronjob_url_starts_nothing(sessions: Sessions,
                                                          options: ScheduleOptions) -> None:
    state = SimpleNamespace(sessions=sessions)
    assert schedules.start(state, Settings(scheduler="local"), options=options) is None
    schedules.poke(state)
    await schedules.stop(state)


async def test_local_ticker_starts_and_stops(sessions: Sessions, options: ScheduleOptions,
                                             recorder: Recorder) -> None:
    state = SimpleNamespace(sessions=sessions)
    settings = Settings(scheduler="local", function_urls={"CronJob": recorder.url})
    task = schedules.start(state, settings, options=options)
    assert task is not None and isinstance(state.schedules, Ticker)
    schedules.poke(state)
    await schedules.stop(state)
    assert task.done() and state.schedules is None


async def test_pingsource_reconciler_starts_reconciles_and_stops(
        api: httpx.AsyncClient, sessions: Sessions, kube: KubeApi, kmock: Any,
        options: ScheduleOptions) -> None:
    state = SimpleNamespace(sessions=sessions)
    task = schedules.start(state, Settings(scheduler="pingsource"),
                           options=options.model_copy(update={"interval_s": 60.0}), kube=kube)
    assert task is not None and isinstance(state.schedules, Reconciler)
    workflow_id = await cron_workflow(api)
    name = object_name((await schedule_of(sessions, workflow_id)).step_id)
    schedules.poke(state)
    await eventually(lambda: name in stored(kmock, "pingsources"), "an immediate pass")
    await schedules.stop(state)
    assert task.done()
