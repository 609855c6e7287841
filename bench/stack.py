"""The platform as it ships, started for the bench on a scratch database: the control
plane (``stepline-control serve``), the func-python function servers, the relay and, in
RabbitMQ mode (in a vhost of the bench's own), the dispatchers standing in for the
RabbitmqSource; every one its own process, every step durable. And the few API calls
the scenarios share (accounts, workflows, starts) and the wait for a job's end, read
from the database's own timestamps."""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median, quantiles
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil
import psycopg

from bench.accounting import Meter
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
POLL_S = 0.002


def percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return quantiles(values, n=100, method="inclusive")[q - 1]


def summary(values: list[float]) -> dict[str, float]:
    return {"median": median(values), "p95": percentile(values, 95), "n": len(values)}


@dataclass
class Stack:
    """The platform's processes for one scratch database, and the operator's API."""

    mode: str  # "one-machine" or "rabbitmq"
    database_url: str
    api: httpx.AsyncClient
    token: str
    children: list[Child] = field(default_factory=list)
    amqp_url: str | None = None

    @property
    def base_url(self) -> str:
        return str(self.api.base_url).rstrip("/")

    def pids(self) -> dict[str, int]:
        return {c.name: c.process.pid for c in self.children if c.process is not None}

    def meter(self, admin_url: str, *, databases: set[str],
              driver_backends: set[int]) -> Meter:
        """CPU of every process a step runs through, the whole PostgreSQL cluster and,
        in RabbitMQ mode, the broker included."""
        port = (urlsplit(self.amqp_url).port or 5672) if self.mode == "rabbitmq" else None
        return Meter(children=self.pids(), admin_url=admin_url, databases=databases,
                     amqp_port=port, driver_backends=driver_backends)

    def rss_mb(self) -> dict[str, float]:
        """Resident memory of each process of the platform, children included."""
        out = {}
        for name, pid in self.pids().items():
            try:
                proc = psutil.Process(pid)
                total = proc.memory_info().rss + sum(
                    c.memory_info().rss for c in proc.children(recursive=True))
            except psutil.Error:
                continue
            out[name] = total / 2**20
        return out


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
            yield Stack(mode=mode, database_url=database_url, api=client, token=token,
                        children=children, amqp_url=broker_url)
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


def chain(n: int, *, trigger: str = "Manual") -> list[dict]:
    """A trigger step (Manual or Webhook) and ``n`` no-op Transform steps, one after the
    other."""
    keys = ["start", *(f"t{i}" for i in range(1, n + 1))]
    steps = [{"key": "start", "function": trigger, "output": "single", "next": keys[1]}]
    for i, key in enumerate(keys[1:], start=1):
        steps.append({"key": key, "function": "Transform", "config": {"expression": "@"},
                      "output": "single" if i < n else None,
                      "next": keys[i + 1] if i < n else None})
    return steps


async def step_id(api: httpx.AsyncClient, workflow_id: str, key: str) -> str:
    steps = (await api.get(f"/v1/workflows/{workflow_id}")).json()["steps"]
    return next(step["id"] for step in steps if step["key"] == key)


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


async def account(s: Stack, name: str) -> httpx.AsyncClient:
    """A new account, made by the operator through the API; a client with its first
    admin token."""
    created = await s.api.post("/v1/accounts", json={"name": f"{name} {uuid.uuid4().hex[:6]}"})
    if created.status_code != 201:
        raise RuntimeError(f"creating account {name!r}: {created.status_code} {created.text}")
    token = created.json()["admin_token"]["token"]
    return httpx.AsyncClient(base_url=s.base_url, timeout=60,
                             headers={"Authorization": f"Bearer {token}"})


async def database_now(conn: psycopg.AsyncConnection) -> Any:
    return (await (await conn.execute("SELECT now()")).fetchone())[0]

