"""Helpers of the RabbitMQ tests: a vhost of their own, the platform's processes in broker
mode (function servers, relays, the dispatcher), a fan-out workflow, and the checks that
nothing was lost and nothing done twice."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg

from stepline_control.onemachine.children import (
    Child,
    function_child,
    function_folders,
    relay_child,
    url_of,
)
from stepline_relay.onemachine.cli import command
from stepline_relay.onemachine.dispatcher import DispatchOptions
from support import child_env, create_workflow, postgres_connection

AMQP_URL = os.environ.get("STEPLINE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
RELAY_APP = "stepline-relay"
FAULTY_FOLDER = Path(__file__).parent / "faulty"
# quick to give up on a dead function, yet patient enough for a restart (12.4 s in all)
TEST_DISPATCH = DispatchOptions(parallelism=8, prefetch=50, retries=5, backoff_delay_s=0.2)
JOB_TIMEOUT_S = 90.0
POLL_S = 0.02


def rabbitmqctl(*args: str) -> str:
    tool = shutil.which("rabbitmqctl")
    if tool is None:
        raise FileNotFoundError("rabbitmqctl is not on PATH")
    done = subprocess.run([tool, "-q", *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stderr or done.stdout}")
    return done.stdout


@dataclass(frozen=True)
class Vhost:
    name: str

    @property
    def url(self) -> str:
        return AMQP_URL.rstrip("/") + "/" + quote(self.name, safe="")

    @classmethod
    def create(cls) -> Vhost:
        vhost = cls(f"stepline-test-{uuid.uuid4().hex[:10]}")
        rabbitmqctl("add_vhost", vhost.name)
        rabbitmqctl("set_permissions", "-p", vhost.name, "guest", ".*", ".*", ".*")
        return vhost

    def delete(self) -> None:
        rabbitmqctl("delete_vhost", self.name)

    def close_connections(self) -> None:
        rabbitmqctl("close_all_connections", "--vhost", self.name, "closed by a fault test")

    def queue_depths(self) -> dict[str, int]:
        out = rabbitmqctl("list_queues", "-p", self.name, "name", "messages")
        rows = (line.rsplit(None, 1) for line in out.splitlines() if line.strip())
        return {name: int(count) for name, count in rows if count.isdigit()}


def platform_env(database_url: str, **extra: str) -> dict[str, str]:
    """A child's environment; bytecode is cached (a child compiling every module it
    imports on each start costs seconds of CPU where PYTHONDONTWRITEBYTECODE is set)."""
    return child_env(database_url, PYTHONDONTWRITEBYTECODE="", **extra)


def function_app(name: str) -> str:
    return f"stepline-fn-{name}"


@dataclass
class BrokerPlatform:
    """Function servers, relays and one dispatcher for one test database and vhost."""

    database_url: str
    vhost: Vhost
    log_dir: Path
    functions: dict[str, Child] = field(default_factory=dict)
    relays: list[Child] = field(default_factory=list)
    dispatchers: list[Child] = field(default_factory=list)
    queue_type: str = "classic"
    _probe: psycopg.Connection | None = None
    _killed: set[int] = field(default_factory=set)

    def value(self, sql: str, *params: Any) -> Any:
        """One value from the platform database, over one connection kept for polling."""
        if self._probe is None or self._probe.closed:
            self._probe = psycopg.connect(self.database_url, autocommit=True,
                                          application_name="stepline-test-probe")
        try:
            return self._probe.execute(sql, params).fetchone()[0]
        except psycopg.OperationalError:
            self._probe.close()  # a test that terminates backends may hit this one
            raise

    def add_function(self, name: str, folder: Path | None = None, **env: str) -> Child:
        folder = folder or function_folders()[name]
        self.functions[name] = function_child(
            name, folder, log_dir=self.log_dir,
            env=platform_env(self.database_url, PGAPPNAME=function_app(name), **env))
        return self.functions[name]

    def function_urls(self) -> dict[str, str]:
        return {name: url_of(child) for name, child in self.functions.items()}

    def start_functions(self) -> None:
        for child in self.functions.values():
            child.start()
        for child in self.functions.values():
            child.wait_ready()

    def kill(self, child: Child) -> None:
        """SIGKILL, as a crash would; the child is then no longer watched."""
        child.kill()
        self._killed.add(id(child))

    def restart_function(self, name: str) -> None:
        child = self.functions[name]
        child.kill()
        child.start().wait_ready()

    def amqp_env(self, **extra: str) -> dict[str, str]:
        return platform_env(self.database_url, STEPLINE_AMQP_URL=self.vhost.url,
                         STEPLINE_AMQP_QUEUE_TYPE=self.queue_type, **extra)

    def start_relay(self, *args: str, env: dict[str, str] | None = None) -> Child:
        """``env`` overrides (say another RabbitMQ user's STEPLINE_AMQP_URL)."""
        relay = relay_child(env={**self.amqp_env(PGAPPNAME=RELAY_APP), **(env or {})},
                            args=list(args))
        relay.name = f"relay-{len(self.relays) + 1}"
        relay.log_path = self.log_dir / f"{relay.name}.log"
        self.relays.append(relay.start())
        return relay

    def start_dispatcher(self, options: DispatchOptions = TEST_DISPATCH,
                         env: dict[str, str] | None = None) -> Child:
        dispatcher = Child(name="dispatch", argv=command(self.function_urls(), options=options),
                           env={**self.amqp_env(), **(env or {})},
                           log_path=self.log_dir / "dispatch.log")
        self.dispatchers.append(dispatcher.start())
        return dispatcher

    def children(self) -> list[Child]:
        return [*self.relays, *self.dispatchers, *self.functions.values()]

    def check_running(self) -> None:
        """Fail at once, with its log, if a process died that nobody killed."""
        for child in self.children():
            if id(child) in self._killed:
                continue
            if child.process is not None and child.process.poll() is not None:
                log = child.log_path.read_text(errors="replace") if child.log_path else ""
                raise RuntimeError(f"{child.name} exited with {child.process.returncode}: "
                                   f"{log[-3000:]}")

    def stop(self) -> None:
        for child in self.children():
            child.stop()
        if self._probe is not None:
            self._probe.close()


def wait_for_log(child: Child, text: str, timeout_s: float = 20.0) -> None:
    assert child.log_path is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.log_path.exists() and text in child.log_path.read_text(errors="replace"):
            return
        if child.process and child.process.poll() is not None:
            raise RuntimeError(f"{child.name} exited: {child.log_path.read_text()[-2000:]}")
        time.sleep(0.05)
    raise TimeoutError(f"{child.name} did not log {text!r} in {timeout_s}s")


# --- the workflow: 500 items split by Transform, saved by Database.query, then marked ---

SAVE_SQL = "INSERT INTO items (id, name) VALUES (:id, :name) ON CONFLICT (id) DO NOTHING"


def fanout_steps() -> list[dict[str, Any]]:
    """start -> split (one message per item) -> save (customer table) -> done."""
    return [
        {"key": "start", "function": "Manual", "output": "single", "next": "split"},
        {"key": "split", "function": "Transform", "config": {"expression": "items"},
         "output": "multiple", "next": "save"},
        {"key": "save", "function": "Database.query",
         "config": {"connection": "crm", "sql": SAVE_SQL, "result": "payload"},
         "output": "single", "next": "done", "retry": {"attempts": 5, "backoff_s": 0.2}},
        {"key": "done", "function": "Transform", "config": {"expression": "{saved: id}"},
         "output": None, "next": None},
    ]


def make_items_table(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)")


async def start_fanout_job(client: httpx.AsyncClient, customer_url: str, items: int) -> str:
    response = await client.post("/v1/connections", json=postgres_connection(customer_url))
    assert response.status_code == 201, response.text
    workflow = await create_workflow(client, fanout_steps(), name="fan-out")
    payload = {"items": [{"id": i, "name": f"item {i}"} for i in range(items)]}
    started = await client.post(f"/v1/workflows/{workflow['id']}/jobs", json={"payload": payload})
    assert started.status_code == 201, started.text
    return started.json()["id"]


def scalar(url: str, sql: str, *params: Any) -> Any:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchone()[0]


async def until(predicate: Callable[[], bool], what: str, timeout_s: float = 60.0,
                interval_s: float = POLL_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(interval_s)
    raise TimeoutError(f"{what} not reached in {timeout_s}s")


def processes_done(platform: BrokerPlatform, step_key: str) -> int:
    return platform.value("SELECT count(*) FROM processes WHERE step_key = %s "
                          "AND status = 'succeeded'", step_key)


async def wait_for_job_end(platform: BrokerPlatform, job_id: str,
                           timeout_s: float = JOB_TIMEOUT_S) -> str:
    def ended() -> bool:
        platform.check_running()
        return platform.value("SELECT status FROM jobs WHERE id = %s", job_id) != "running"

    def marked() -> bool:
        return not platform.value("SELECT count(*) FROM outbox WHERE job_id = %s "
                                  "AND status = 'pending'", job_id)
    await until(ended, f"the end of job {job_id}", timeout_s, interval_s=0.1)
    # the relay marks a row sent once RabbitMQ confirmed it, which can come after the
    # consumer acted on the message and the job ended: wait for those marks too
    await until(marked, f"every message of job {job_id} marked sent", timeout_s,
                interval_s=0.1)
    return platform.value("SELECT status FROM jobs WHERE id = %s", job_id)


@dataclass(frozen=True)
class Summary:
    """What one job left behind, for the checks."""

    job_status: str
    processes: dict[tuple[str, str], int]  # (step key, status) -> count
    rows: int
    distinct_rows: int
    outbox: dict[str, int]  # status -> count
    first_attempts: int  # outbox rows that are not a step's scheduled retry
    inbox: int
    dead_letters: int

    @classmethod
    def of(cls, database_url: str, customer_url: str, job_id: str) -> Summary:
        with psycopg.connect(database_url) as conn:
            job_status = conn.execute("SELECT status FROM jobs WHERE id = %s",
                                      (job_id,)).fetchone()[0]
            processes = {(key, status): n for key, status, n in conn.execute(
                "SELECT step_key, status, count(*) FROM processes WHERE job_id = %s "
                "GROUP BY 1, 2", (job_id,))}
            outbox = dict(conn.execute(
                "SELECT status, count(*) FROM outbox WHERE job_id = %s GROUP BY 1", (job_id,)))
            first_attempts = conn.execute(
                "SELECT count(*) FROM outbox WHERE job_id = %s "
                "AND attributes->>'attempt' = '1'", (job_id,)).fetchone()[0]
            inbox = conn.execute(
                "SELECT count(*) FROM inbox i JOIN processes p ON p.id = i.process_id "
                "WHERE p.job_id = %s", (job_id,)).fetchone()[0]
            dead = conn.execute("SELECT count(*) FROM dead_letters WHERE job_id = %s",
                                (job_id,)).fetchone()[0]
        with psycopg.connect(customer_url) as conn:
            rows, distinct = conn.execute(
                "SELECT count(*), count(DISTINCT id) FROM items").fetchone()
        return cls(job_status, processes, rows, distinct, outbox, first_attempts, inbox, dead)


def assert_each_item_once(summary: Summary, items: int) -> None:
    """The job succeeded; every item saved once; every process ran to success exactly
    once; every outbox row sent; no message was acted on twice."""
    assert summary.job_status == "succeeded", summary
    assert summary.processes == {("start", "succeeded"): 1, ("split", "succeeded"): 1,
                                 ("save", "succeeded"): items, ("done", "succeeded"): items}
    assert (summary.rows, summary.distinct_rows) == (items, items)
    assert set(summary.outbox) == {"sent"}, summary.outbox
    # one message per process, plus the retries a step scheduled for itself
    assert summary.first_attempts == 1 + 2 * items
    # each delivered event acted on once (the inbox holds one row per event acted on)
    assert summary.inbox == summary.outbox["sent"]
    assert summary.dead_letters == 0
