"""End-to-end scenarios of issues 7 and 16, run against the whole platform as it ships
(``bench.stack``), in both modes, one-machine (the relay POSTs to the functions) and
RabbitMQ: a 40-step chain, trigger to first step, a 10,000-item fan-out into
``Database.query`` with another account's small job started during it (fairness), and
the throughput run (``bench.throughput``).

Times come from the database's own timestamps (a process's ``started_at`` and
``finished_at``, a job's ``created_at`` and ``finished_at``), so the bench's polling
does not add to them; only "trigger to first step" starts on the bench's clock, just
before its POST."""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from pathlib import Path
from statistics import median
from typing import Any

import httpx
import psycopg

from bench.stack import (
    Stack,
    account,
    chain,
    create_workflow,
    job_end,
    stack,
    start,
    step_id,
    summary,
)
from bench.throughput import scenario_throughput

CHAIN_STEPS = 40
CHAIN_JOBS = 10
FIRST_STEP_SAMPLES = 30
FANOUT_ITEMS = 10_000
FAIRNESS_PROBES = 5  # account B's small jobs, one after the other, while A's fan-out runs
FAIRNESS_PAUSE_S = 1.0


HOPS_SQL = """
SELECT extract(epoch FROM o.sent_at - prev.finished_at) * 1000 AS to_sent,
       extract(epoch FROM p.started_at - o.sent_at) * 1000 AS sent_to_start,
       extract(epoch FROM p.started_at - prev.finished_at) * 1000 AS total
FROM processes p
JOIN processes prev ON prev.id = p.parent_id
JOIN outbox o ON o.process_id = p.id
WHERE p.job_id = %s AND p.function <> 'Manual' AND prev.function <> 'Manual'
"""


async def hop_gaps_ms(conn: psycopg.AsyncConnection, job_id: str) -> dict[str, list[float]]:
    """For each hop of a chain, from one step's commit (its ``finished_at``: the success
    is one statement) to the next step's start, split at the outbox row's ``sent_at``
    (when the relay marked it: after the publish's confirm with RabbitMQ, after the
    function's answer on one machine)."""
    cur = await conn.execute(HOPS_SQL, (job_id,))
    rows = await cur.fetchall()
    marked = [r for r in rows if r[0] is not None]  # the last may not be marked yet
    return {"total": [float(r[2]) for r in rows], "to_sent": [float(r[0]) for r in marked],
            "sent_to_start": [float(r[1]) for r in marked]}


async def scenario_chain(s: Stack) -> dict[str, Any]:
    workflow_id = await create_workflow(s.api, "bench chain", chain(CHAIN_STEPS))
    async with await psycopg.AsyncConnection.connect(s.database_url, autocommit=True) as conn:
        await job_end(conn, await start(s.api, workflow_id, {"n": 0}))  # warm-up
        seconds, gaps = [], {"total": [], "to_sent": [], "sent_to_start": []}
        for i in range(CHAIN_JOBS):
            job_id = await start(s.api, workflow_id, {"n": i})
            end = await job_end(conn, job_id)
            if end["status"] != "succeeded":
                raise RuntimeError(f"chain job ended {end['status']}")
            seconds.append(end["seconds"])
            for key, values in (await hop_gaps_ms(conn, job_id)).items():
                gaps[key] += values
    per_hop = [x * 1000 / CHAIN_STEPS for x in seconds]
    return {"job_s": summary(seconds), "per_hop_ms": summary(per_hop),
            "commit_to_next_start_ms": summary(gaps["total"]),
            "commit_to_marked_sent_ms": summary(gaps["to_sent"]),
            "marked_sent_to_next_start_ms": summary(gaps["sent_to_start"])}


async def scenario_first_step(s: Stack) -> dict[str, Any]:
    """From a manual start, and from a Webhook call through the control plane
    (``POST /v1/hooks/{step_id}``), to the first function's ``started_at``."""
    manual = await create_workflow(s.api, "bench first step", chain(1))
    hook = await create_workflow(s.api, "bench hook", chain(1, trigger="Webhook"))
    hook_step = await step_id(s.api, hook, "start")

    async def by_manual() -> str:
        return await start(s.api, manual, {})

    async def by_webhook() -> str:
        response = await s.api.post(f"/v1/hooks/{hook_step}", json={"n": 1})
        if response.status_code != 202:
            raise RuntimeError(f"calling the webhook: {response.status_code} {response.text}")
        return response.json()["job_id"]

    out: dict[str, Any] = {}
    async with await psycopg.AsyncConnection.connect(s.database_url, autocommit=True) as conn:
        for name, call in (("manual", by_manual), ("webhook", by_webhook)):
            await job_end(conn, await call())  # warm-up
            delays, answered = [], []
            for _ in range(FIRST_STEP_SAMPLES):
                await asyncio.sleep(0.05)  # the platform idle, as a start usually finds it
                sent = time.time()
                job_id = await call()
                answered.append((time.time() - sent) * 1000)
                await job_end(conn, job_id)
                cur = await conn.execute(
                    "SELECT extract(epoch FROM started_at) FROM processes "
                    "WHERE job_id = %s AND function = 'Transform'", (job_id,))
                delays.append((float((await cur.fetchone())[0]) - sent) * 1000)
            out[name] = {"ms": summary(delays), "api_answer_ms": summary(answered)}
    return {**out["manual"], "webhook": out["webhook"]}



async def postgres_connection(api: httpx.AsyncClient, target_url: str) -> str:
    """A ``postgres`` connection of the client's account to the target database."""
    info = psycopg.conninfo.conninfo_to_dict(target_url)
    name = f"bench{uuid.uuid4().hex[:6]}"
    created = await api.post("/v1/connections", json={
        "name": name, "kind": "postgres",
        "config": {"host": info.get("host", "127.0.0.1"), "port": info.get("port", "5432"),
                   "dbname": info["dbname"], "user": info.get("user", "postgres")},
        "secret": {"password": info.get("password") or "unused-with-trust-auth"}})
    if created.status_code != 201:
        raise RuntimeError(f"creating the connection: {created.status_code} {created.text}")
    return name


def fanout_steps(connection: str) -> list[dict]:
    return [
        {"key": "start", "function": "Manual", "output": "single", "next": "split"},
        {"key": "split", "function": "Transform", "config": {"expression": "items"},
         "output": "multiple", "next": "save"},
        {"key": "save", "function": "Database.query", "output": None, "next": None,
         "config": {"connection": connection, "result": "rowcount",
                    "sql": "INSERT INTO items (id, name) VALUES (:id, :name)"}},
    ]


def probe_steps(connection: str) -> list[dict]:
    """Account B's small job: through the fan-out's own function (Database.query, a
    read), then a no-op, so it shares every queue A's items wait in."""
    return [
        {"key": "start", "function": "Manual", "output": "single", "next": "read"},
        {"key": "read", "function": "Database.query", "output": "single", "next": "done",
         "config": {"connection": connection, "sql": "SELECT 1 AS one"}},
        {"key": "done", "function": "Transform", "config": {"expression": "@"},
         "output": None, "next": None},
    ]


async def job_status(conn: psycopg.AsyncConnection, job_id: str) -> str:
    cur = await conn.execute("SELECT status FROM jobs WHERE id = %s", (job_id,))
    return (await cur.fetchone())[0]


async def all_items_queued(conn: psycopg.AsyncConnection, job_id: str) -> None:
    """Until the fan-out's items are all processes of the job: A's whole backlog is
    waiting, the hardest moment for another account to arrive."""
    while await job_status(conn, job_id) == "running":
        cur = await conn.execute("SELECT count(*) FROM processes WHERE job_id = %s "
                                 "AND function = 'Database.query'", (job_id,))
        if (await cur.fetchone())[0] >= FANOUT_ITEMS:
            return
        await asyncio.sleep(0.05)


async def fairness_probes(conn: psycopg.AsyncConnection, api_b: httpx.AsyncClient,
                          workflow_id: str, fanout_job: str) -> list[dict[str, Any]]:
    """Account B's small jobs, one at a time, for as long as A's fan-out runs: each one's
    time from created to finished, and whether A's fan-out was still running then."""
    await all_items_queued(conn, fanout_job)
    probes: list[dict[str, Any]] = []
    while len(probes) < FAIRNESS_PROBES and await job_status(conn, fanout_job) == "running":
        end = await job_end(conn, await start(api_b, workflow_id, {}), 600)
        probes.append({**end, "fanout_still_running":
                       await job_status(conn, fanout_job) == "running"})
        await asyncio.sleep(FAIRNESS_PAUSE_S)
    return probes


async def scenario_fanout(s: Stack, target_url: str) -> dict[str, Any]:
    """Account A's job fans out into FANOUT_ITEMS inserts; account B (another tenant,
    both made through the API by the operator) starts small jobs meanwhile."""
    with psycopg.connect(target_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS items")
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)")
    api_a, api_b = await account(s, "bench A"), await account(s, "bench B")
    try:
        fanout = await create_workflow(api_a, "bench fan-out",
                                       fanout_steps(await postgres_connection(api_a, target_url)))
        probe = await create_workflow(api_b, "bench fairness",
                                      probe_steps(await postgres_connection(api_b, target_url)))
        items = [{"id": i, "name": f"item {i}"} for i in range(FANOUT_ITEMS)]
        async with await psycopg.AsyncConnection.connect(s.database_url,
                                                         autocommit=True) as conn:
            job = await start(api_a, fanout, {"items": items})
            probes = await fairness_probes(conn, api_b, probe, job)
            end = await job_end(conn, job, 600)
    finally:
        await api_a.aclose()
        await api_b.aclose()
    return {**fanout_result(end, target_url), "fairness": fairness_result(probes)}


def fanout_result(end: dict[str, Any], target_url: str) -> dict[str, Any]:
    with psycopg.connect(target_url) as conn:
        written = conn.execute("SELECT count(*) FROM items").fetchone()[0]
    if end["status"] != "succeeded" or written != FANOUT_ITEMS:
        raise RuntimeError(f"fan-out ended {end['status']} with {written} rows written")
    return {"items": FANOUT_ITEMS, "job_s": end["seconds"], "rows_written": written,
            "items_per_s": FANOUT_ITEMS / end["seconds"]}


def fairness_result(probes: list[dict[str, Any]]) -> dict[str, Any]:
    if any(p["status"] != "succeeded" for p in probes):
        raise RuntimeError(f"a small job of account B did not succeed: {probes}")
    seconds = [p["seconds"] for p in probes]
    return {"probes": probes, "worst_s": max(seconds, default=None),
            "median_s": median(seconds) if seconds else None}


async def run_mode(database_url: str, target_url: str, mode: str, amqp_url: str,
                   admin_url: str, log_dir: Path) -> dict[str, Any]:
    with stack(database_url, mode, amqp_url, log_dir / mode) as s:
        await asyncio.sleep(1.0)  # let the servers settle before reading idle memory
        out: dict[str, Any] = {"idle_rss_mb": s.rss_mb()}
        try:
            out["first_step"] = await scenario_first_step(s)
            out["chain"] = await scenario_chain(s)
            out["fanout"] = await scenario_fanout(s, target_url)
            out["throughput"] = await scenario_throughput(s, admin_url)
        finally:
            await s.api.aclose()
        return out


def measure(make_database: Any, amqp_url: str, admin_url: str) -> dict[str, Any]:
    """Both modes, each on a fresh scratch database (and a second one for the rows the
    fan-out writes)."""
    results = {}
    with tempfile.TemporaryDirectory(prefix="stepline-bench-") as tmp:
        for mode in ("one-machine", "rabbitmq"):
            (Path(tmp) / mode).mkdir()
            with make_database() as database_url, make_database(migrated=False) as target:
                results[mode] = asyncio.run(
                    run_mode(database_url, target, mode, amqp_url, admin_url, Path(tmp)))
    return results
