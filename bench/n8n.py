"""n8n as a peer: installed by ``make bench-peers`` into bench/.cache/peers/n8n (from the
npm registry, a pinned version, no global install), started here against this machine's
PostgreSQL (a scratch database), in regular mode, executions saved as its defaults
have it, on a free port, with telemetry, diagnostics and version notifications off.
Workflows go in through n8n's own CLI (``import:workflow``, then ``update:workflow``
to activate them) before the server starts, so no login or API key is needed.

Its figures come from its own stored timestamps: ``execution_entity.startedAt`` and
``stoppedAt``."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "bench" / ".cache" / "peers" / "n8n"
BINARY = INSTALL / "node_modules" / ".bin" / "n8n"
READY_TIMEOUT_S = 180.0  # its first start migrates a fresh database: a minute or more
CLI_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 20.0
POLL_S = 0.005


class N8nError(Exception):
    """n8n is not installed, did not start, or a CLI command failed."""


def version() -> str:
    package = INSTALL / "node_modules" / "n8n" / "package.json"
    if not package.is_file():
        raise N8nError(f"n8n is not installed in {INSTALL}: run make bench-peers")
    return json.loads(package.read_text())["version"]


def environment(database_url: str, *, port: int, broker_port: int, home: Path) -> dict[str, str]:
    """Regular mode on PostgreSQL, nothing that calls out (there is no internet here)."""
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    return {
        "DB_TYPE": "postgresdb", "DB_POSTGRESDB_HOST": info.get("host", "127.0.0.1"),
        "DB_POSTGRESDB_PORT": str(info.get("port", 5432)),
        "DB_POSTGRESDB_DATABASE": info["dbname"],
        "DB_POSTGRESDB_USER": info.get("user", "postgres"),
        "DB_POSTGRESDB_PASSWORD": info.get("password", ""),
        "EXECUTIONS_MODE": "regular",
        "N8N_USER_FOLDER": str(home), "N8N_ENCRYPTION_KEY": secrets.token_hex(24),
        "N8N_LISTEN_ADDRESS": "127.0.0.1", "N8N_HOST": "127.0.0.1", "N8N_PORT": str(port),
        "N8N_PROTOCOL": "http", "WEBHOOK_URL": f"http://127.0.0.1:{port}/",
        "N8N_RUNNERS_BROKER_PORT": str(broker_port),
        "N8N_DIAGNOSTICS_ENABLED": "false", "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
        "N8N_TEMPLATES_ENABLED": "false", "N8N_PERSONALIZATION_ENABLED": "false",
        "N8N_HIRING_BANNER_ENABLED": "false", "N8N_COMMUNITY_PACKAGES_ENABLED": "false",
        "N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS": "true", "N8N_SECURE_COOKIE": "false",
        "N8N_LOG_LEVEL": "warn", "NODE_ENV": "production",
    }


def webhook_chain(name: str, path: str, steps: int) -> dict[str, Any]:
    """A Webhook trigger (answering at once, as Stepline's hook does) and ``steps``
    No Operation nodes, one after the other."""
    names = ["Webhook", *(f"Step {i}" for i in range(1, steps + 1))]
    nodes = [{"id": str(uuid.uuid4()), "name": "Webhook", "type": "n8n-nodes-base.webhook",
              "typeVersion": 2, "position": [0, 0], "webhookId": str(uuid.uuid4()),
              "parameters": {"httpMethod": "POST", "path": path,
                             "responseMode": "onReceived", "options": {}}}]
    nodes += [{"id": str(uuid.uuid4()), "name": node, "type": "n8n-nodes-base.noOp",
               "typeVersion": 1, "position": [200 * i, 0], "parameters": {}}
              for i, node in enumerate(names[1:], start=1)]
    connections = {a: {"main": [[{"node": b, "type": "main", "index": 0}]]}
                   for a, b in zip(names, names[1:], strict=False)}
    return {"id": secrets.token_hex(8), "name": name, "active": False, "nodes": nodes,
            "connections": connections, "settings": {"executionOrder": "v1"}}


@dataclass
class N8n:
    """A running n8n: its URL, its process and its database."""

    url: str
    process: subprocess.Popen
    database_url: str

    def webhook(self, path: str) -> str:
        return f"{self.url}/webhook/{path}"


def cli(env: dict[str, str], *args: str, log: Path) -> None:
    with log.open("ab") as out:
        done = subprocess.run([str(BINARY), *args], env={**os.environ, **env}, stdout=out,
                              stderr=subprocess.STDOUT, timeout=CLI_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise N8nError(f"n8n {' '.join(args)} exited {done.returncode}: see {log}")


def load_workflows(env: dict[str, str], workflows: list[dict[str, Any]], home: Path,
                   log: Path) -> None:
    """Import the workflows and activate them, through n8n's CLI on its database."""
    file = home / "workflows.json"
    file.write_text(json.dumps(workflows))
    cli(env, "import:workflow", f"--input={file}", log=log)
    cli(env, "update:workflow", "--all", "--active=true", log=log)


def wait_ready(n8n: N8n, log: Path) -> None:
    """Until the server answers its health check."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if n8n.process.poll() is not None:
            raise N8nError(f"n8n exited with {n8n.process.returncode}: see {log}")
        try:
            if httpx.get(f"{n8n.url}/healthz", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise N8nError(f"n8n not ready after {READY_TIMEOUT_S:.0f}s: see {log}")


def warm_up(n8n: N8n, path: str) -> None:
    """POST to a production webhook until it answers: n8n registers the active
    workflows' webhooks after its server is up. Each answered POST is an execution,
    which the callers count as their warm-up."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if httpx.post(n8n.webhook(path), json={"warm": True}, timeout=10.0).is_success:
            return
        time.sleep(0.25)
    raise N8nError(f"n8n's webhook {path!r} not registered after {READY_TIMEOUT_S:.0f}s")


@contextmanager
def running(database_url: str, workflows: list[dict[str, Any]], *, port: int,
            broker_port: int, home: Path) -> Iterator[N8n]:
    env = environment(database_url, port=port, broker_port=broker_port, home=home)
    log = home / "n8n.log"
    load_workflows(env, workflows, home, log)
    with log.open("ab") as out:
        process = subprocess.Popen([str(BINARY), "start"], env={**os.environ, **env},
                                   stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    n8n = N8n(f"http://127.0.0.1:{port}", process, database_url)
    try:
        wait_ready(n8n, log)
        yield n8n
    finally:
        stop(process)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


EXECUTIONS_SQL = """
SELECT extract(epoch FROM "startedAt"), extract(epoch FROM "stoppedAt"), status
FROM execution_entity WHERE "workflowId" = %s AND "stoppedAt" IS NOT NULL
ORDER BY id
"""


async def executions(conn: psycopg.AsyncConnection,
                     workflow_id: str) -> list[tuple[float, float, str]]:
    """Each finished execution of the workflow, in order: its start, stop and status."""
    rows = await (await conn.execute(EXECUTIONS_SQL, (workflow_id,))).fetchall()
    return [(float(a), float(b), s) for a, b, s in rows]


async def finished_count(conn: psycopg.AsyncConnection, workflow_id: str) -> int:
    cur = await conn.execute('SELECT count(*) FROM execution_entity WHERE "workflowId" = %s'
                             ' AND "stoppedAt" IS NOT NULL', (workflow_id,))
    return (await cur.fetchone())[0]


async def wait_executions(conn: psycopg.AsyncConnection, workflow_id: str, count: int,
                          timeout_s: float = 300.0) -> list[tuple[float, float, str]]:
    """Until ``count`` executions of the workflow have finished; all of them."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await finished_count(conn, workflow_id) >= count:
            return await executions(conn, workflow_id)
        await asyncio.sleep(POLL_S)
    raise N8nError(f"fewer than {count} executions of {workflow_id} after {timeout_s:.0f}s")
