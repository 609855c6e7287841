"""Step executions per second, and what they cost: jobs of a Manual start and three
no-op steps, started by a driver that costs little (``bench.driver``) with at most
IN_FLIGHT_JOBS running, for THROUGHPUT_S after a warm-up. Over the window, the CPU of
every process (the platform's, the whole PostgreSQL cluster's, RabbitMQ's, the
driver's own, see ``bench.accounting``) is divided by the step executions counted from
the processes' own ``finished_at``; every process's RSS is sampled while it serves."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any

import psycopg

from bench.accounting import DRIVER, Meter, per_step_ms, spent
from bench.driver import Poster
from bench.stack import Stack, chain, create_workflow, database_now

THROUGHPUT_S = float(os.environ.get("STEPLINE_BENCH_THROUGHPUT_S", "60"))
WARMUP_S = 5.0
IN_FLIGHT_JOBS = 300  # the driver keeps at most this many jobs running
CONNECTIONS = 8  # the driver's concurrent keep-alive connections to the API
STEPS = 3
POLL_S = 0.05  # how often the driver reads how many jobs are running
RSS_EVERY_S = 1.0

RUNNING_SQL = "SELECT count(*) FROM jobs WHERE status = 'running'"  # ix_jobs_running
STEPS_SQL = """
SELECT count(*) FROM processes
WHERE function = 'Transform' AND finished_at >= %s AND finished_at < %s
"""


@dataclass
class Load:
    """Starts jobs as fast as the platform takes them, ``limit`` running at most: the
    running count is read every POLL_S and the starts since added to it. A client with
    no room waits on an event rather than polling, so waiting costs the driver nothing."""

    poster: Poster
    limit: int
    running: int = 0
    since_poll: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    room: asyncio.Event = field(default_factory=asyncio.Event)

    def _update(self) -> None:
        if self.stop.is_set() or self.running + self.since_poll < self.limit:
            self.room.set()
        else:
            self.room.clear()

    async def poll(self, conn: psycopg.AsyncConnection) -> None:
        while not self.stop.is_set():
            running = (await (await conn.execute(RUNNING_SQL)).fetchone())[0]
            self.running, self.since_poll = running, 0
            self._update()
            await asyncio.sleep(POLL_S)
        self._update()  # wakes the waiting clients, which then see the stop

    async def client(self) -> None:
        while not self.stop.is_set():
            await self.room.wait()
            if self.stop.is_set():
                return
            self.since_poll += 1
            self._update()
            await self.poster.post()


async def sample_rss(s: Stack, stop: asyncio.Event) -> dict[str, float]:
    """The largest RSS of each process seen while the load runs, in MB."""
    peak: dict[str, float] = {}
    while not stop.is_set():
        for name, mb in s.rss_mb().items():
            peak[name] = max(peak.get(name, 0.0), mb)
        await asyncio.sleep(RSS_EVERY_S)
    return peak


async def scenario_throughput(s: Stack, admin_url: str) -> dict[str, Any]:
    workflow_id = await create_workflow(s.api, "bench throughput", chain(STEPS))
    poster = Poster(s.base_url, s.token, f"/v1/workflows/{workflow_id}/jobs", {"payload": {}})
    async with await psycopg.AsyncConnection.connect(s.database_url, autocommit=True) as conn:
        backend = (await (await conn.execute("SELECT pg_backend_pid()")).fetchone())[0]
        meter = s.meter(admin_url, databases={s.database_url.rsplit("/", 1)[1]},
                        driver_backends={backend})
        load = Load(poster, IN_FLIGHT_JOBS)
        tasks = [asyncio.create_task(load.poll(conn)),
                 *(asyncio.create_task(load.client()) for _ in range(CONNECTIONS))]
        rss_before = s.rss_mb()
        await asyncio.sleep(WARMUP_S)
        window = await measured_window(s, meter, poster)
        load.stop.set()
        await asyncio.gather(*tasks)
        await poster.close()
        window["rss_mb_before"], window["rss_mb_after"] = rss_before, s.rss_mb()
        async with conn.cursor() as cur:
            await cur.execute(STEPS_SQL, (window.pop("began"), window.pop("ended")))
            steps = (await cur.fetchone())[0]
            await cur.execute("SELECT count(*) FROM jobs WHERE status = 'failed'")
            window["jobs_failed"] = (await cur.fetchone())[0]
    return finish(window, steps, meter.counted())


async def measured_window(s: Stack, meter: Meter, poster: Poster) -> dict[str, Any]:
    """THROUGHPUT_S of load between two CPU snapshots, each paired with the database's
    clock (the step count is read between those two instants)."""
    async with await psycopg.AsyncConnection.connect(s.database_url, autocommit=True) as clock:
        before = await asyncio.to_thread(meter.snapshot)
        began, posts = await database_now(clock), poster.sent
        stop_rss = asyncio.Event()
        rss = asyncio.create_task(sample_rss(s, stop_rss))
        await asyncio.sleep(THROUGHPUT_S)
        ended, posts = await database_now(clock), poster.sent - posts
        after = await asyncio.to_thread(meter.snapshot)
        stop_rss.set()
    return {"began": began, "ended": ended, "seconds": (ended - began).total_seconds(),
            "posts": posts, "cpu_s": spent(before, after), "rss_mb_peak": await rss}


def finish(window: dict[str, Any], steps: int, counted: set[str]) -> dict[str, Any]:
    cpu_s = window.pop("cpu_s")
    cpu = per_step_ms(cpu_s, steps, counted=counted)
    return {**window, "steps": steps, "steps_per_s": steps / window["seconds"],
            "cpu_ms_per_step": cpu["groups"], "cpu_ms_per_step_total": cpu["total"],
            "cpu_not_counted": cpu["not_counted"],
            "cpu_ms_per_step_everything": sum(cpu["groups"].values()),
            "driver_ms_per_post": cpu_s.get(DRIVER, 0.0) * 1000 / max(window["posts"], 1),
            "driver_core_share": cpu_s.get(DRIVER, 0.0) / window["seconds"]}
