"""``make bench-peers``: n8n and Stepline side by side, in one run, on this machine's
PostgreSQL, the same two shapes each, every figure from the system's own stored
timestamps (server-side):

- a Webhook trigger and CHAIN_STEPS no-op steps in a chain, run one at a time: the
  median from an execution's start (n8n's ``startedAt``, Stepline's job
  ``created_at``) to its finish;
- a Webhook and BURST_STEPS no-op steps, BURST_RUNS calls from BURST_CLIENTS
  concurrent clients, each calling again when an execution has finished (both systems
  answer a call at once, so without that pacing all 300 would run at once): step
  executions per second, from the first start to the last step's finish, and the CPU
  every process spent per step (``bench.accounting``).

Stepline runs both modes, one machine and through RabbitMQ (``bench.stack``); the
ratios Stepline / n8n are printed and the figures kept under ``bench/results/``."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

import psycopg

from bench import n8n
from bench.__main__ import ADMIN_URL, AMQP_URL, RESULTS, ROOT, load_average, scratch_database
from bench.accounting import Meter, per_step_ms, spent
from bench.driver import Poster, paced
from bench.stack import Stack, chain, create_workflow, job_end, stack, step_id
from stepline_control.onemachine.children import free_port

CHAIN_STEPS = 40
CHAIN_RUNS = 10
BURST_STEPS = 5
BURST_RUNS = 300
BURST_CLIENTS = 16
CHAIN_PATH, BURST_PATH = "bench-chain", "bench-burst"


async def backend_pid(conn: psycopg.AsyncConnection) -> int:
    return (await (await conn.execute("SELECT pg_backend_pid()")).fetchone())[0]


async def n8n_chain(server: n8n.N8n, conn: psycopg.AsyncConnection, workflow_id: str
                    ) -> list[float]:
    """CHAIN_RUNS executions, each called when the last has finished (after the warm-up
    execution, which is left out): each one's seconds from start to stop."""
    poster = Poster(server.url, None, f"/webhook/{CHAIN_PATH}", {"n": 0},
                    retry=frozenset({503}))
    for i in range(CHAIN_RUNS):
        await poster.post()
        done = await n8n.wait_executions(conn, workflow_id, i + 2)
    await poster.close()
    check_n8n(done)
    return [stop - start for start, stop, _ in done[1:]]


async def n8n_burst(server: n8n.N8n, conn: psycopg.AsyncConnection, workflow_id: str,
                    meter: Meter) -> dict[str, Any]:
    # n8n answers 503 while its database ping (SELECT 1 through its pool of two, 5 s at
    # most) waits behind the executions' writes: a client would call again
    poster = Poster(server.url, None, f"/webhook/{BURST_PATH}", {"n": 0},
                    retry=frozenset({503}))
    before = await asyncio.to_thread(meter.snapshot)

    async def finished() -> int:  # the warm-up's execution left out
        return await n8n.finished_count(conn, workflow_id) - 1

    await paced(poster, finished, clients=BURST_CLIENTS, total=BURST_RUNS)
    done = (await n8n.executions(conn, workflow_id))[1:]
    after = await asyncio.to_thread(meter.snapshot)
    await poster.close()
    check_n8n(done)
    seconds = max(stop for _, stop, _ in done) - min(start for start, _, _ in done)
    return {**burst_figures(seconds, spent(before, after), meter.counted()),
            "answered_503": poster.retried}


def check_n8n(done: list[tuple[float, float, str]]) -> None:
    failed = [status for _, _, status in done if status != "success"]
    if failed:
        raise n8n.N8nError(f"{len(failed)} n8n executions did not succeed: {failed[:3]}")


def burst_figures(seconds: float, cpu_s: dict[str, float], counted: set[str]
                  ) -> dict[str, Any]:
    steps = BURST_RUNS * BURST_STEPS
    cpu = per_step_ms(cpu_s, steps, counted=counted)
    return {"seconds": seconds, "steps": steps, "steps_per_s": steps / seconds,
            "cpu_ms_per_step": cpu["groups"], "cpu_ms_per_step_total": cpu["total"]}


async def measure_n8n(database_url: str, server: n8n.N8n, workflows: dict[str, str]
                      ) -> dict[str, Any]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        for path, workflow_id in workflows.items():
            await asyncio.to_thread(n8n.warm_up, server, path)
            await n8n.wait_executions(conn, workflow_id, 1)
        meter = Meter(children={"n8n": server.process.pid}, admin_url=ADMIN_URL,
                      databases={database_url.rsplit("/", 1)[1]},
                      driver_backends={await backend_pid(conn)})
        chain_s = await n8n_chain(server, conn, workflows[CHAIN_PATH])
        burst = await n8n_burst(server, conn, workflows[BURST_PATH], meter)
    return {"version": n8n.version(), "chain_s": chain_s, "chain_median_s": median(chain_s),
            "burst": burst}


def run_n8n() -> dict[str, Any]:
    chain_flow = n8n.webhook_chain("bench chain", CHAIN_PATH, CHAIN_STEPS)
    burst_flow = n8n.webhook_chain("bench burst", BURST_PATH, BURST_STEPS)
    with scratch_database(migrated=False) as database_url, \
            tempfile.TemporaryDirectory(prefix="stepline-peers-n8n-") as home, \
            n8n.running(database_url, [chain_flow, burst_flow], port=free_port(),
                        broker_port=free_port(), home=Path(home)) as server:
        return asyncio.run(measure_n8n(database_url, server, {
            CHAIN_PATH: chain_flow["id"], BURST_PATH: burst_flow["id"]}))


async def hook_poster(s: Stack, steps: int) -> Poster:
    workflow_id = await create_workflow(s.api, f"peers {steps} steps",
                                        chain(steps, trigger="Webhook"))
    hook = await step_id(s.api, workflow_id, "start")
    return Poster(s.base_url, s.token, f"/v1/hooks/{hook}", {"n": 0})


async def job_id(poster: Poster) -> str:
    return json.loads(await poster.post())["job_id"]


async def stepline_chain(s: Stack, conn: psycopg.AsyncConnection) -> list[float]:
    poster = await hook_poster(s, CHAIN_STEPS)
    await job_end(conn, await job_id(poster))  # warm-up
    seconds = []
    for _ in range(CHAIN_RUNS):
        end = await job_end(conn, await job_id(poster))
        if end["status"] != "succeeded":
            raise RuntimeError(f"a chain job ended {end['status']}")
        seconds.append(end["seconds"])
    await poster.close()
    return seconds


FINISHED_SQL = """
SELECT count(*) FROM jobs
WHERE workflow_id = (SELECT workflow_id FROM jobs WHERE id = %s) AND id <> %s
  AND status <> 'running'
"""
BURST_SQL = """
SELECT count(*) FILTER (WHERE p.function = 'Transform'),
       extract(epoch FROM max(p.finished_at) - min(j.created_at)),
       count(*) FILTER (WHERE p.status <> 'succeeded')
FROM jobs j JOIN processes p ON p.job_id = j.id
WHERE j.id = ANY(%s::uuid[])
"""


async def stepline_burst(s: Stack, conn: psycopg.AsyncConnection, meter: Meter
                         ) -> dict[str, Any]:
    poster = await hook_poster(s, BURST_STEPS)
    warm_up = await job_id(poster)
    await job_end(conn, warm_up)
    before = await asyncio.to_thread(meter.snapshot)

    async def finished() -> int:
        cur = await conn.execute(FINISHED_SQL, (warm_up, warm_up))
        return (await cur.fetchone())[0]

    answers = await paced(poster, finished, clients=BURST_CLIENTS, total=BURST_RUNS)
    jobs = [json.loads(a)["job_id"] for a in answers]
    after = await asyncio.to_thread(meter.snapshot)
    await poster.close()
    steps, seconds, bad = await (await conn.execute(BURST_SQL, (jobs,))).fetchone()
    if bad or steps != BURST_RUNS * BURST_STEPS:
        raise RuntimeError(f"the burst ran {steps} steps, {bad} of them not succeeded")
    return burst_figures(float(seconds), spent(before, after), meter.counted())


async def measure_stepline(s: Stack) -> dict[str, Any]:
    async with await psycopg.AsyncConnection.connect(s.database_url, autocommit=True) as conn:
        meter = s.meter(ADMIN_URL, databases={s.database_url.rsplit("/", 1)[1]},
                        driver_backends={await backend_pid(conn)})
        chain_s = await stepline_chain(s, conn)
        burst = await stepline_burst(s, conn, meter)
    await s.api.aclose()
    return {"chain_s": chain_s, "chain_median_s": median(chain_s), "burst": burst}


def run_stepline(mode: str, log_dir: Path) -> dict[str, Any]:
    (log_dir / mode).mkdir()
    with scratch_database() as database_url, \
            stack(database_url, mode, AMQP_URL, log_dir / mode) as s:
        return asyncio.run(measure_stepline(s))


def lines(results: dict[str, Any]) -> list[str]:
    """The side-by-side table and the ratios, as printed lines."""
    peer = results["n8n"]
    rows = [(f"n8n {peer['version']}, regular mode, PostgreSQL, executions saved", peer)]
    rows += [(f"Stepline, {label}", results[mode])
             for mode, label in (("one-machine", "one machine"), ("rabbitmq", "RabbitMQ"))]
    out = [f"{'system':<58}{CHAIN_STEPS}-step chain, median   step executions/s   "
           "CPU per step"]
    for label, r in rows:
        out.append(f"{label:<58}{r['chain_median_s'] * 1000:>8.0f} ms"
                   f"{r['burst']['steps_per_s']:>18,.0f}/s"
                   f"{r['burst']['cpu_ms_per_step_total']:>14.1f} ms")
    for label, r in rows[1:]:
        out.append(f"{label} / n8n: chain time {r['chain_median_s'] / peer['chain_median_s']:.2f}x"
                   f" (below 1: faster), step executions/s "
                   f"{r['burst']['steps_per_s'] / peer['burst']['steps_per_s']:.2f}x "
                   "(above 1: more)")
    if peer["burst"].get("answered_503"):
        out.append(f"n8n answered 503 {peer['burst']['answered_503']} times in the burst (its "
                   "database ping waited over 5 s behind the executions' writes); each was "
                   "called again after 0.1 s")
    return out


def main() -> None:
    started = time.perf_counter()
    context = {"when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
               "cpus": os.cpu_count(), "load_before": load_average()}
    print(f"n8n and Stepline side by side ({CHAIN_STEPS}-step chain x {CHAIN_RUNS}; "
          f"{BURST_RUNS} x {BURST_STEPS} steps from {BURST_CLIENTS} clients)", flush=True)
    results: dict[str, Any] = {"n8n": run_n8n()}
    with tempfile.TemporaryDirectory(prefix="stepline-peers-") as tmp:
        for mode in ("one-machine", "rabbitmq"):
            results[mode] = run_stepline(mode, Path(tmp))
    context |= {"load_after": load_average(), "seconds": round(time.perf_counter() - started, 1)}
    printed = lines(results)
    for line in printed:
        print("  " + line)
    print(f"  load average {context['load_before']} before, {context['load_after']} after; "
          "CPU per step counts the system's processes and the whole PostgreSQL cluster "
          "(other databases' backends left out)")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"peers-{context['when'].replace(':', '')}.json"
    out.write_text(json.dumps({"context": context, "lines": printed, "figures": results},
                              indent=2, default=str) + "\n")
    print(f"  ({context['seconds']}s; written to {out.relative_to(ROOT)})")


if __name__ == "__main__":
    main()
