"""An Email step ticks too: in a cluster a PingSource per step (at most once a minute, its
resolution) whose sink is the email function, and on one machine the local ticker every
``every`` seconds, sent to the Email function's URL — the same CloudEvent either way."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stepline_control.schedules.desired import email_cron, load_desired
from stepline_control.schedules.events import object_name
from stepline_control.schedules.kube import KubeApi
from stepline_control.schedules.options import ScheduleOptions
from stepline_control.schedules.ticker import Ticker
from support import create_workflow

from .helpers import ManualClock, Recorder, call, eventually, stored
from .test_reconciler import reconciler

Sessions = async_sessionmaker[AsyncSession]
START = datetime(2025, 3, 1, 3, 57, 40, tzinfo=UTC)


async def email_workflow(api: httpx.AsyncClient, every: float) -> dict[str, Any]:
    await call(api, "POST", "/v1/connections", json={
        "name": "mail", "kind": "imap", "config": {"host": "imap.example.com"},
        "secret": {"user": "u", "password": "p"}})
    steps = [{"key": "mail", "function": "Email", "output": None,
              "config": {"connection": "mail", "every": every}}]
    return await create_workflow(api, steps, name=f"mail every {every}")


@pytest.mark.parametrize(("every", "cron"), [
    (5, "* * * * *"), (60, "* * * * *"), (61, "*/2 * * * *"), (300, "*/5 * * * *"),
    (3600, "0 */1 * * *"), (7200, "0 */2 * * *"), (86_400, "0 0 * * *")])
def test_a_pingsource_polls_at_most_once_a_minute(every: float, cron: str) -> None:
    assert email_cron(every) == cron


async def test_an_email_step_has_a_pingsource_whose_sink_is_the_email_function(
        api: httpx.AsyncClient, sessions: Sessions, kube: KubeApi, kmock: Any,
        options: ScheduleOptions) -> None:
    workflow = await email_workflow(api, every=300)
    name = object_name(workflow["steps"][0]["id"])
    await reconciler("pingsource", kube, sessions, options).reconcile_once()
    source = stored(kmock, "pingsources")[name]
    assert source["spec"]["schedule"] == "*/5 * * * *"
    assert source["spec"]["sink"]["ref"]["name"] == "email"
    await reconciler("cronjob", kube, sessions, options).reconcile_once()
    command = stored(kmock, "cronjobs")[name]["spec"]["jobTemplate"]["spec"]["template"][
        "spec"]["containers"][0]["command"]
    assert command[4] == "http://email.stepline.svc.cluster.local"


async def test_the_local_ticker_polls_every_every_seconds(
        api: httpx.AsyncClient, sessions: Sessions, recorder: Recorder,
        options: ScheduleOptions) -> None:
    workflow = await email_workflow(api, every=20)
    clock = ManualClock(START)
    ticker = Ticker(load=partial(load_desired, sessions), url=None, options=options,
                    clock=clock, urls={"Email": recorder.url})
    task = asyncio.create_task(ticker.run())
    try:
        for _ in range(7):  # 70 s in steps of 10
            await eventually(clock.idle, "the ticker asleep")
            clock.set(clock.now() + timedelta(seconds=10))
        await eventually(lambda: len(recorder.requests) >= 3, "three ticks")
        await asyncio.sleep(0.2)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    ticks = recorder.ticks()
    assert len(ticks) == 3  # at 20, 40 and 60 s
    assert {t["data"]["step_id"] for t in ticks} == {workflow["steps"][0]["id"]}
    assert all(t["type"] == "dev.knative.sources.ping" for t in ticks)
