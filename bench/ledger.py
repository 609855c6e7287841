"""The effect ledger's cost per step (issue 17): what ``Database.query``'s statement
costs on a customer's PostgreSQL with the ledger (its default) and without it
(``config.ledger: false``), for a write (a one-row INSERT into a table without a unique
key) and for a read (a one-row SELECT), measured with the real :class:`Ledger` on a
pool like the function's (autocommit, ``fsync`` on).

Each case runs one statement after another on one connection (its latency, median and
p95; the cases take turns step by step) and then ``CONCURRENCY`` at once on a pool of
that size (its rate; the cases take turns batch by batch). The best of ``ROUNDS`` rounds
counts: the machine is shared. Run alone with ``python -m bench.ledger``; ``make bench`` calls
:func:`measure` and prints :func:`rows`."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from stepline.context import Context
from stepline.definition import RetryPolicy, Step
from stepline.ledger import Ledger
from stepline.packet import Packet, ProcessRef, Ref, StepRef, WorkflowRef
from stepline.settings import Settings

ADMIN_URL = os.environ.get("STEPLINE_BENCH_ADMIN_URL",
                           "postgresql://postgres@127.0.0.1:5432/postgres")
SEQUENTIAL = 1_000
CONCURRENT = 4_000
CONCURRENCY = 16  # Database.query's pool holds 5; a few function servers share a database
ROUNDS = 3
CASES = ("write, bare", "write, ledger", "read, bare", "read, ledger")

Effect = Callable[[psycopg.AsyncConnection], Awaitable[Any]]


@dataclass(frozen=True)
class Figures:
    latency_ms: list[float]
    per_s: float

    def summary(self) -> dict[str, float]:
        ordered = sorted(self.latency_ms)
        return {"median_ms": statistics.median(ordered),
                "p95_ms": ordered[int(0.95 * (len(ordered) - 1))], "per_s": self.per_s}


class _Runtime:
    """What a context's runtime gives the ledger: the settings (retention)."""

    settings = Settings()


def delivery() -> Context[Any]:
    """The context of a new delivery: a new process, so a new ledger key."""
    packet = Packet(payload={}, account=Ref(id=uuid.uuid4()), job=Ref(id=uuid.uuid4()),
                    workflow=WorkflowRef(id=uuid.uuid4(), version=1),
                    step=StepRef(id=uuid.uuid4(), key="save"),
                    process=ProcessRef(id=uuid.uuid4()))
    step = Step(id=packet.step.id, workflow_id=packet.workflow.id, key="save", name=None,
                function="Database.query", config={}, next_key=None, output="single",
                retry=RetryPolicy())
    return Context(packet=packet, step=step, config=None, runtime=_Runtime())


async def write(conn: psycopg.AsyncConnection) -> Any:
    cur = await conn.execute("INSERT INTO items (id, name) VALUES (%s, %s)", (1, "item"))
    return {"rowcount": cur.rowcount}


async def read(conn: psycopg.AsyncConnection) -> Any:
    cur = await conn.execute("SELECT id, name FROM items WHERE id = %s LIMIT 1", (1,))
    return {"rows": await cur.fetchall()}


def step(case: str, pool: AsyncConnectionPool, ledger: Ledger, count: int
         ) -> Callable[[], Awaitable[Any]]:
    """One step's statement as Database.query runs it in ``case``; ``count`` deliveries
    are made beforehand, so that building them is not timed."""
    effect: Effect = write if case.startswith("write") else read
    if case.endswith("ledger"):
        deliveries = iter([delivery() for _ in range(count)])
        return lambda: ledger.run(next(deliveries), pool, effect)

    async def bare() -> Any:
        async with pool.connection() as conn:
            return await effect(conn)
    return bare


async def timed(one: Callable[[], Awaitable[Any]], count: int, concurrency: int) -> Figures:
    latencies: list[float] = []
    slots = asyncio.Semaphore(concurrency)

    async def run() -> None:
        async with slots:
            started = time.perf_counter()
            await one()
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(run() for _ in range(count)))
    return Figures(latencies, count / (time.perf_counter() - started))


async def alternating(one: dict[str, Callable[[], Awaitable[Any]]], count: int
                      ) -> dict[str, Figures]:
    """Each case's steps one after another on one connection, the cases taking turns
    step by step, so that a neighbour's burst weighs on all of them alike."""
    latencies: dict[str, list[float]] = {case: [] for case in one}
    for _ in range(count):
        for case, run in one.items():
            started = time.perf_counter()
            await run()
            latencies[case].append((time.perf_counter() - started) * 1000)
    return {case: Figures(found, 1000 * len(found) / sum(found))
            for case, found in latencies.items()}


async def measure_on(url: str) -> dict[str, dict[str, dict[str, float]]]:
    """Every case, sequential and concurrent, the best of ``ROUNDS`` rounds."""
    ledger = Ledger(prune_every_s=float("inf"))
    found: dict[str, dict[str, list[Figures]]] = {c: {"one": [], "many": []} for c in CASES}
    async with AsyncConnectionPool(url, min_size=1, max_size=1,
                                   kwargs={"autocommit": True}) as pool:
        await step("write, ledger", pool, ledger, 1)()  # the ledger's table, made once
        for _ in range(ROUNDS):
            one = {case: step(case, pool, ledger, SEQUENTIAL) for case in CASES}
            for case, figures in (await alternating(one, SEQUENTIAL)).items():
                found[case]["one"].append(figures)
    async with AsyncConnectionPool(url, min_size=CONCURRENCY, max_size=CONCURRENCY,
                                   kwargs={"autocommit": True}) as pool:
        for _ in range(ROUNDS):
            for case in CASES:
                found[case]["many"].append(await timed(
                    step(case, pool, ledger, CONCURRENT), CONCURRENT, CONCURRENCY))
    return {case: best(f["one"], f["many"]) for case, f in found.items()}


def best(sequential: list[Figures], concurrent: list[Figures]) -> dict[str, dict[str, float]]:
    return {"sequential": min(sequential, key=lambda f: statistics.median(f.latency_ms)
                              ).summary(),
            "concurrent": max(concurrent, key=lambda f: f.per_s).summary()}


@contextmanager
def scratch_customer(admin_url: str = ADMIN_URL) -> Iterator[str]:
    name = f"stepline_bench_ledger_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE items (id int NOT NULL, name text NOT NULL)")
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def measure(admin_url: str = ADMIN_URL) -> dict[str, Any]:
    """The figures, on a scratch customer database made and dropped here."""
    with scratch_customer(admin_url) as url:
        return asyncio.run(measure_on(url))


def rows(figures: dict[str, Any]) -> list[tuple[str, str]]:
    """Label and value of each line ``make bench`` prints."""
    lines = []
    for kind in ("write", "read"):
        bare, ledger = figures[f"{kind}, bare"], figures[f"{kind}, ledger"]
        one_b, one_l = bare["sequential"], ledger["sequential"]
        lines.append((f"ledger: one {kind}, one connection, bare -> ledger",
                      f"median {one_b['median_ms']:.2f} -> {one_l['median_ms']:.2f} ms "
                      f"(+{one_l['median_ms'] - one_b['median_ms']:.2f} ms a step), "
                      f"p95 {one_b['p95_ms']:.2f} -> {one_l['p95_ms']:.2f} ms"))
        many_b, many_l = bare["concurrent"], ledger["concurrent"]
        lines.append((f"ledger: {kind}s, {CONCURRENCY} at once, bare -> ledger",
                      f"{many_b['per_s']:,.0f} -> {many_l['per_s']:,.0f}/s "
                      f"({many_l['per_s'] / many_b['per_s']:.0%})"))
    return lines


def main() -> None:
    figures = measure()
    print("\nThe effect ledger's cost per Database.query step (issue 17):")
    width = max(len(label) for label, _ in rows(figures)) + 2
    for label, value in rows(figures):
        print(f"  {label:<{width}}{value}")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
