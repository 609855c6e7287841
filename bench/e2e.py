"""End-to-end scenarios of issue 7, run against the whole platform as it ships: the
control plane (``stepline-control serve``), func-python function servers, the relay,
and, in RabbitMQ mode, the dispatchers standing in for the RabbitmqSource — every one
its own process, every step durable (inbox, outbox, PostgreSQL with fsync on, RabbitMQ
persistent with confirms).

Each scenario runs in both modes, one-machine (relay POSTs to the functions) and
RabbitMQ. Times come from the database's own timestamps (a process's ``started_at`` and
``finished_at``, a job's ``created_at`` and ``finished_at``), so the bench's polling
does not add to them; only "trigger to first step" starts on the bench's clock, just
before its POST."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median, quantiles
from typing import Any

import httpx
import psutil
import psycopg

from stepline.secrets import SecretBox
from stepline_control.onemachine.children import (
    Child,
    dispatch_child,
    free_port,
    function_child,
    function_folders,
    relay_child,
    url_of,
)

FUNCTIONS = ("Transform", "Database.query")
CHAIN_STEPS = 40
CHAIN_JOBS = 10
FIRST_STEP_SAMPLES = 30
FANOUT_ITEMS = 10_000
THROUGHPUT_S = float(os.environ.get("STEPLINE_BENCH_THROUGHPUT_S", "60"))
WARMUP_S = 5.0
IN_FLIGHT_JOBS = 300  # the throughput driver keeps at most this many jobs running
STARTERS = 4  # concurrent POST /jobs of the driver
POLL_S = 0.002


def percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return quantiles(values, n=100, method="inclusive")[q - 1]


def summary(values: list[float]) -> dict[str, float]:
    return {"median": median(values), "p95": percentile(values, 95), "n": len(values)}


@dataclass
class Stack:
    """The platform's processes for one scratch database."""

    mode: str  # "one-machine" or "rabbitmq"
    database_url: str
    api: httpx.AsyncClient
    children: list[Child] = field(default_factory=list)

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds (user + system) used so far by each process of the platform and,
        as "postgres", by the database backends serving this scratch database."""
        out = {}
        for child in self.children:
            if child.process is None:
                continue
            try:
                proc = psutil.Process(child.process.pid)
                out[child.name] = sum(_cpu(p) for p in [proc, *proc.children(recursive=True)])
            except psutil.Error:
                continue
        dbname = self.database_url.rsplit("/", 1)[1]
        out["postgres"] = sum(_cpu(p) for p in psutil.process_iter(["cmdline"])
                              if f" {dbname} " in " ".join(p.info["cmdline"] or []) + " ")
        return out

    def rss_mb(self) -> dict[str, float]:
        """Resident memory of each process of the platform, children included."""
        out = {}
        for child in self.children:
            if child.process is None:
                continue
            try:
                proc = psutil.Process(child.process.pid)
                total = proc.memory_info().rss + sum(
                    c.memory_info().rss for c in proc.children(recursive=True))
            except psutil.Error:
                continue
            out[child.name] = total / 2**20
        return out


def _cpu(proc: psutil.Process) -> float:
    try:
        times = proc.cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system


def rabbitmqctl(*args: str) -> None:
    tool = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([tool, "-q", *args], check=True, capture_output=True, timeout=60)


@contextmanager
def vhost(amqp_url: str) -> Iterator[str]:
    """A RabbitMQ vhost of the bench's own, so its queues meet nobody else's."""
    name = f"stepline-bench-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", name)
    user = amqp_url.split("//", 1)[1].split(":", 1)[0]
    rabbitmqctl("set_permissions", "-p", name, user, ".*", ".*", ".*")
    try:
        yield amqp_url.rstrip("/") + "/" + name
    finally:
        rabbitmqctl("delete_vhost", name)


@contextmanager
def stack(database_url: str, mode: str, amqp_url: str, log_dir: Path) -> Iterator[Stack]:
    token = "stl_" + secrets.token_urlsafe(24)
    env = {"STEPLINE_DATABASE_URL": database_url,
           "STEPLINE_SECRET_KEY": SecretBox.generate_key(),
           "STEPLINE_HTTP_ALLOW_CIDRS": "127.0.0.0/8", "STEPLINE_LOG_LEVEL": "WARNING"}
    folders = function_folders()
    functions = [function_child(name, folders[name], env=env, log_dir=log_dir)
                 for name in FUNCTIONS]
    urls = {child.name: url_of(child) for child in functions}
    port = free_port()
    control = Child(
        name="control-plane",
        argv=[sys.executable, "-m", "stepline_control.cli", "serve", "--port", str(port)],
        env={**env, "STEPLINE_BOOTSTRAP_TOKEN": token},
        health_url=f"http://127.0.0.1:{port}/healthz", log_path=log_dir / "control-plane.log")
    children = [control, *functions]
    with vhost(amqp_url) if mode == "rabbitmq" else nullcontext() as broker_url:
        if mode == "rabbitmq":
            broker = {**env, "STEPLINE_AMQP_URL": broker_url}
            children += [relay_child(env=broker, log_dir=log_dir),
                         dispatch_child(urls, env=broker, log_dir=log_dir)]
        else:
            children.append(relay_child(env={**env, "STEPLINE_FUNCTION_URLS": json.dumps(urls)},
                                        log_dir=log_dir))
        try:
            for child in children:
                child.start()
            for child in children:
                child.wait_ready()
            client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60,
                                       headers={"Authorization": f"Bearer {token}"})
            yield Stack(mode=mode, database_url=database_url, api=client, children=children)
        finally:
            for child in children:
                child.stop()


async def create_workflow(api: httpx.AsyncClient, name: str, steps: list[dict]) -> str:
    project = await api.post("/v1/projects", json={"name": f"bench {uuid.uuid4().hex[:6]}"})
    project.raise_for_status()
    created = await api.post("/v1/workflows", json={
        "name": name, "project_id": project.json()["id"], "steps": steps})
    if created.status_code != 201:
        raise RuntimeError(f"creating workflow {name!r}: {created.status_code} {created.text}")
    return created.json()["id"]


def chain(n: int) -> list[dict]:
    """A Manual start and ``n`` no-op Transform steps, one after the other."""
    keys = ["start", *(f"t{i}" for i in range(1, n + 1))]
    steps = [{"key": "start", "function": "Manual", "output": "single", "next": keys[1]}]
    for i, key in enumerate(keys[1:], start=1):
        steps.append({"key": key, "function": "Transform", "config": {"expression": "@"},
                      "output": "single" if i < n else None,
                      "next": keys[i + 1] if i < n else None})
    return steps


async def start(api: httpx.AsyncClient, workflow_id: str, payload: Any) -> str:
    response = await api.post(f"/v1/workflows/{workflow_id}/jobs", json={"payload": payload})
    if response.status_code != 201:
        raise RuntimeError(f"starting a job: {response.status_code} {response.text}")
    return response.json()["id"]


async def job_end(conn: psycopg.AsyncConnection, job_id: str,
                  timeout_s: float = 300.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        cur = await conn.execute(
            "SELECT status, extract(epoch FROM finished_at - created_at) AS seconds "
            "FROM jobs WHERE id = %s", (job_id,))
        status, seconds = await cur.fetchone()
        if status != "running":
            return {"status": status, "seconds": float(seconds)}
        await asyncio.sleep(POLL_S)
    raise TimeoutError(f"job {job_id} still running after {timeout_s}s")


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
    hook_steps = chain(1)
    hook_steps[0] = {**hook_steps[0], "key": "start", "function": "Webhook"}
    hook = await create_workflow(s.api, "bench hook", hook_steps)
    steps = (await s.api.get(f"/v1/workflows/{hook}")).json()["steps"]
    hook_step = next(step["id"] for step in steps if step["key"] == "start")

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


async def scenario_fanout(s: Stack, target_url: str) -> dict[str, Any]:
    with psycopg.connect(target_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS items")
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)")
    info = psycopg.conninfo.conninfo_to_dict(target_url)
    name = f"bench{uuid.uuid4().hex[:6]}"
    created = await s.api.post("/v1/connections", json={
        "name": name, "kind": "postgres",
        "config": {"host": info.get("host", "127.0.0.1"), "port": info.get("port", "5432"),
                   "dbname": info["dbname"], "user": info.get("user", "postgres")},
        "secret": {"password": info.get("password") or "unused-with-trust-auth"}})
    if created.status_code != 201:
        raise RuntimeError(f"creating the connection: {created.status_code} {created.text}")
    workflow_id = await create_workflow(s.api, "bench fan-out", [
        {"key": "start", "function": "Manual", "output": "single", "next": "split"},
        {"key": "split", "function": "Transform", "config": {"expression": "items"},
         "output": "multiple", "next": "save"},
        {"key": "save", "function": "Database.query", "output": None, "next": None,
         "config": {"connection": name, "result": "rowcount",
                    "sql": "INSERT INTO items (id, name) VALUES (:id, :name)"}},
    ])
    items = [{"id": i, "name": f"item {i}"} for i in range(FANOUT_ITEMS)]
    async with await psycopg.AsyncConnection.connect(s.database_url, autocommit=True) as conn:
        end = await job_end(conn, await start(s.api, workflow_id, {"items": items}), 600)
    with psycopg.connect(target_url) as conn:
        written = conn.execute("SELECT count(*) FROM items").fetchone()[0]
    if end["status"] != "succeeded" or written != FANOUT_ITEMS:
        raise RuntimeError(f"fan-out ended {end['status']} with {written} rows written")
    return {"items": FANOUT_ITEMS, "job_s": end["seconds"], "rows_written": written,
            "items_per_s": FANOUT_ITEMS / end["seconds"]}


async def scenario_throughput(s: Stack) -> dict[str, Any]:
    """Jobs of a Manual start and three no-op steps, started as fast as the platform
    takes them with at most IN_FLIGHT_JOBS running; step executions counted from the
    processes' own ``finished_at`` after a warm-up."""
    workflow_id = await create_workflow(s.api, "bench throughput", chain(3))
    started = finished = 0
    stop = asyncio.Event()

    async def count_finished(conn: psycopg.AsyncConnection) -> None:
        nonlocal finished
        while not stop.is_set():
            cur = await conn.execute("SELECT count(*) FROM jobs WHERE status <> 'running'")
            finished = (await cur.fetchone())[0]
            await asyncio.sleep(0.1)

    async def starter() -> None:
        nonlocal started
        while not stop.is_set():
            if started - finished >= IN_FLIGHT_JOBS:
                await asyncio.sleep(0.01)
                continue
            started += 1
            await start(s.api, workflow_id, {})

    async with await psycopg.AsyncConnection.connect(s.database_url, autocommit=True) as conn:
        cur = await conn.execute("SELECT now()")
        t0 = (await cur.fetchone())[0]
        tasks = [asyncio.create_task(count_finished(conn)),
                 *(asyncio.create_task(starter()) for _ in range(STARTERS))]
        rss_before = s.rss_mb()
        await asyncio.sleep(WARMUP_S)
        cpu_before = s.cpu_s()
        await asyncio.sleep(THROUGHPUT_S)
        cpu_after = s.cpu_s()
        stop.set()
        await asyncio.gather(*tasks)
        rss_after = s.rss_mb()
        cur = await conn.execute(
            "SELECT count(*) FILTER (WHERE function = 'Transform'), count(DISTINCT job_id) "
            "FROM processes WHERE finished_at >= %s + make_interval(secs => %s) "
            "AND finished_at < %s + make_interval(secs => %s)",
            (t0, WARMUP_S, t0, WARMUP_S + THROUGHPUT_S))
        steps, jobs = await cur.fetchone()
        cur = await conn.execute("SELECT count(*) FROM jobs WHERE status = 'failed'")
        failed = (await cur.fetchone())[0]
    cpu_ms_per_step = {name: (cpu_after.get(name, 0.0) - used) * 1000 / max(steps, 1)
                       for name, used in cpu_before.items()}
    return {"seconds": THROUGHPUT_S, "steps_per_s": steps / THROUGHPUT_S,
            "cpu_ms_per_step": cpu_ms_per_step,
            "cpu_ms_per_step_total": sum(cpu_ms_per_step.values()),
            "jobs_started": started, "jobs_touched_per_s": jobs / THROUGHPUT_S,
            "jobs_failed": failed, "rss_mb_before": rss_before, "rss_mb_after": rss_after}


async def run_mode(database_url: str, target_url: str, mode: str, amqp_url: str,
                   log_dir: Path) -> dict[str, Any]:
    with stack(database_url, mode, amqp_url, log_dir / mode) as s:
        await asyncio.sleep(1.0)  # let the servers settle before reading idle memory
        out: dict[str, Any] = {"idle_rss_mb": s.rss_mb()}
        try:
            out["first_step"] = await scenario_first_step(s)
            out["chain"] = await scenario_chain(s)
            out["fanout"] = await scenario_fanout(s, target_url)
            out["throughput"] = await scenario_throughput(s)
        finally:
            await s.api.aclose()
        return out


def measure(make_database: Any, amqp_url: str) -> dict[str, Any]:
    """Both modes, each on a fresh scratch database (and a second one for the rows the
    fan-out writes)."""
    results = {}
    with tempfile.TemporaryDirectory(prefix="stepline-bench-") as tmp:
        for mode in ("one-machine", "rabbitmq"):
            (Path(tmp) / mode).mkdir()
            with make_database() as database_url, make_database(migrated=False) as target:
                results[mode] = asyncio.run(
                    run_mode(database_url, target, mode, amqp_url, Path(tmp)))
    return results


TARGETS = {
    "throughput": 1000.0,  # step executions/s, at least
    "per_hop_ms": 5.0,  # at most, median
    "chain_job_s": 0.2,
    "fanout_s": 10.0,
    "first_step_ms": 10.0,
    "function_rss_mb": 80.0,
}


def table(results: dict[str, Any], raw: dict[str, float]) -> tuple[list[tuple], dict[str, Any]]:
    """Rows of (what, one machine, RabbitMQ, target, tightest raw limit, ratio of the
    RabbitMQ figure to that limit); and the same as data for the JSON file.

    ``raw`` holds this run's raw rates (publish, consume, commit, post, per second)
    and the median of one INSERT + COMMIT in ms (``commit_ms``): a rate is compared
    with the slowest primitive every step needs, a latency with one durable commit,
    which every hop makes at least once."""
    om, mq = results["one-machine"], results["rabbitmq"]
    rates = {k: raw[k] for k in ("publish", "consume", "commit", "post")}
    tight_name = min(rates, key=rates.get)
    tight = rates[tight_name]
    commit_ms = raw["commit_ms"]

    def fn_rss(r: dict[str, Any]) -> float:
        return max(v for k, v in r["idle_rss_mb"].items() if k in FUNCTIONS)

    figures = {
        "steps_per_s": (om["throughput"]["steps_per_s"], mq["throughput"]["steps_per_s"]),
        "chain_job_s": (om["chain"]["job_s"]["median"], mq["chain"]["job_s"]["median"]),
        "per_hop_ms": (om["chain"]["per_hop_ms"]["median"], mq["chain"]["per_hop_ms"]["median"]),
        "per_hop_p95_ms": (om["chain"]["per_hop_ms"]["p95"], mq["chain"]["per_hop_ms"]["p95"]),
        "fanout_s": (om["fanout"]["job_s"], mq["fanout"]["job_s"]),
        "first_step_ms": (om["first_step"]["ms"]["median"], mq["first_step"]["ms"]["median"]),
        "webhook_first_step_ms": (om["first_step"]["webhook"]["ms"]["median"],
                                  mq["first_step"]["webhook"]["ms"]["median"]),
        "function_rss_mb": (fn_rss(om), fn_rss(mq)),
        "cpu_ms_per_step": (om["throughput"]["cpu_ms_per_step_total"],
                            mq["throughput"]["cpu_ms_per_step_total"]),
    }
    rows = [
        (f"steps/s, 3-step jobs, {THROUGHPUT_S:.0f} s", *figures["steps_per_s"], "≥ 1,000",
         f"{tight_name} {tight:,.0f}/s", figures["steps_per_s"][1] / tight),
        ("40-step chain, job (median)", *figures["chain_job_s"], "≤ 0.2 s",
         f"commit {commit_ms:.1f} ms x 40", figures["chain_job_s"][1] * 1000
         / (commit_ms * CHAIN_STEPS)),
        ("  per hop, median", *figures["per_hop_ms"], "≤ 5 ms", f"commit {commit_ms:.1f} ms",
         figures["per_hop_ms"][1] / commit_ms),
        ("  per hop, p95", *figures["per_hop_p95_ms"], "", "", None),
        (f"fan-out of {FANOUT_ITEMS:,} to Database.query", *figures["fanout_s"], "≤ 10 s",
         f"{tight_name} {tight:,.0f}/s", (FANOUT_ITEMS / figures["fanout_s"][1]) / tight),
        ("manual start to first step (median)", *figures["first_step_ms"], "≤ 10 ms",
         f"commit {commit_ms:.1f} ms", figures["first_step_ms"][1] / commit_ms),
        ("webhook call to first step (median)", *figures["webhook_first_step_ms"], "≤ 10 ms",
         f"commit {commit_ms:.1f} ms", figures["webhook_first_step_ms"][1] / commit_ms),
        ("function server RSS, idle (largest)", *figures["function_rss_mb"], "< 80 MB", "", None),
        ("CPU per step, all processes", *figures["cpu_ms_per_step"], "", "", None),
    ]
    return rows, {"figures": figures, "targets": TARGETS, "tightest_raw": tight_name,
                  "details": results}


UNITS = {"steps/s": "{:,.0f}/s", "job": "{:.2f} s", "per hop": "{:.1f} ms",
         "webhook": "{:.1f} ms",
         "fan-out": "{:.1f} s", "first step": "{:.1f} ms", "RSS": "{:.0f} MB",
         "CPU": "{:.1f} ms"}


def fmt(label: str, value: float) -> str:
    for key, pattern in UNITS.items():
        if key in label:
            return pattern.format(value)
    return f"{value:.2f}"


def print_table(rows: list[tuple]) -> None:
    header = ("scenario", "one machine", "RabbitMQ", "target", "tightest raw limit",
              "RabbitMQ / limit")
    cells = [header] + [
        (label, fmt(label, om), fmt(label, mq), target, limit,
         "" if ratio is None else (f"{ratio:.0%}" if "/s" in limit else f"{ratio:.1f}x"))
        for label, om, mq, target, limit, ratio in rows]
    widths = [max(len(str(row[i])) for row in cells) for i in range(len(header))]
    for row in cells:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
