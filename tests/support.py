"""Helpers the tests share: the control plane in-process, the platform's processes,
a local HTTP API to call, and polling for a job's end."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
from cloudevents.core.bindings.http import to_binary_event
from cryptography.fernet import Fernet
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from stepline.context import Context
from stepline.definition import RetryPolicy, Step
from stepline.packet import Packet, ProcessRef, Ref, StepRef, WorkflowRef, to_cloudevent
from stepline.secrets import SecretBox
from stepline.settings import Settings
from stepline.step import StepRuntime
from stepline_control.app import create_app
from stepline_control.onemachine.children import (
    Child,
    function_child,
    function_folders,
    relay_child,
    url_of,
)

TOKEN = "stl_test_operator_token"
SECRET_KEY = Fernet.generate_key().decode()
JOB_TIMEOUT_S = 60.0
# a function server's first request opens its pool: slow on a loaded 2-core machine
HTTP_TIMEOUT_S = 30.0


def post(url: str, **kwargs: Any) -> httpx.Response:
    """httpx.post with a time-out made for a busy CI machine."""
    return httpx.post(url, timeout=HTTP_TIMEOUT_S, **kwargs)


def settings_for(database_url: str, **extra: Any) -> Settings:
    return Settings(
        database_url=database_url, bootstrap_token=TOKEN, secret_key=SECRET_KEY, **extra
    )


@asynccontextmanager
async def control_plane(database_url: str, token: str = TOKEN, *,
                        settings: Settings | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """The control plane in this process, lifespan included, as an authenticated client."""
    app = create_app(settings or settings_for(database_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://control-plane",
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            yield client


def child_env(database_url: str, **extra: str) -> dict[str, str]:
    return {
        "STEPLINE_DATABASE_URL": database_url,
        "STEPLINE_SECRET_KEY": SECRET_KEY,
        "STEPLINE_HTTP_ALLOW_CIDRS": "127.0.0.0/8",
        **extra,
    }


class Platform:
    """The function servers and a relay for one test database; ``env`` overrides the
    functions' environment (an empty ``STEPLINE_HTTP_ALLOW_CIDRS``, say)."""

    def __init__(self, database_url: str, functions: list[str], log_dir: Path,
                 env: dict[str, str] | None = None) -> None:
        self.database_url, self.log_dir = database_url, log_dir
        folders = function_folders()
        self.functions = {
            name: function_child(name, folders[name], env=child_env(database_url, **(env or {})),
                                 log_dir=log_dir)
            for name in functions
        }
        self.relays: list[Child] = []

    @property
    def function_urls(self) -> dict[str, str]:
        return {name: url_of(child) for name, child in self.functions.items()}

    def start_functions(self) -> None:
        for child in self.functions.values():
            child.start()
        for child in self.functions.values():
            child.wait_ready()

    def start_relay(self, *args: str) -> Child:
        env = child_env(self.database_url, STEPLINE_FUNCTION_URLS=json.dumps(self.function_urls))
        relay = relay_child(env=env, log_dir=self.log_dir, args=list(args)).start()
        self.relays.append(relay)
        return relay

    def stop(self) -> None:
        for child in [*self.relays, *self.functions.values()]:
            child.stop()


@contextmanager
def running_function(name: str, database_url: str, log_dir: Path) -> Iterator[Child]:
    """One function's server, started as func's host builder would, for this test."""
    child = function_child(
        name, function_folders()[name], env=child_env(database_url), log_dir=log_dir
    )
    try:
        yield child.start().wait_ready()
    finally:
        child.stop()


@contextmanager
def platform(
    database_url: str, functions: list[str], log_dir: Path, relays: int = 1,
    env: dict[str, str] | None = None,
) -> Iterator[Platform]:
    running = Platform(database_url, functions, log_dir, env)
    try:
        running.start_functions()
        for _ in range(relays):
            running.start_relay()
        yield running
    finally:
        running.stop()


async def wait_for_job(
    client: httpx.AsyncClient, job_id: str, timeout_s: float = JOB_TIMEOUT_S
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
        if job["status"] != "running":
            return job
        await asyncio.sleep(0.1)
    raise TimeoutError(f"job {job_id} still running after {timeout_s}s: {job}")


async def all_processes(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    items, cursor = [], None
    while True:
        params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(f"/v1/jobs/{job_id}/processes", params=params)).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


Reply = tuple[int, dict[str, str], bytes]  # status, headers, body
Respond = Callable[[str, str, dict[str, str], bytes], Reply]


def json_reply(status: int, body: Any, **headers: str) -> Reply:
    return status, {"content-type": "application/json", **headers}, json.dumps(body).encode()


class LocalHttp:
    """A small HTTP server on 127.0.0.1 for the tests' fakes (an upstream API, a
    stand-in function): ``respond(method, path, headers, body)`` answers each request,
    from a thread of its own. Use it as a context manager."""

    def __init__(self, respond: Respond) -> None:
        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, reply_headers, reply = respond(self.command, self.path, headers, body)
                self.send_response(status)
                for name, value in {**reply_headers, "content-length": str(len(reply))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            # a relay opens up to 64 connections at once: with the default backlog of 5
            # the kernel drops the rest of a burst, and each dropped connect waits 1 s,
            # 3 s, 7 s... for its retransmission
            request_queue_size = 256
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self) -> LocalHttp:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class ItemsApi(LocalHttp):
    """A local HTTP API answering GET /items with N items; ``failures`` first answers
    are 503 (a flaky upstream). Counts every call."""

    def __init__(self, count: int, failures: int = 0) -> None:
        self.count, self.failures, self.calls = count, failures, 0
        super().__init__(self._respond)
        self.url = f"{self.base}/items"

    def _respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        self.calls += 1
        if self.calls <= self.failures:
            return json_reply(503, {"error": "try later"})
        return json_reply(
            200, {"items": [{"id": i, "name": f"item {i}"} for i in range(self.count)]}
        )


async def create_project(client: httpx.AsyncClient, name: str = "Tests") -> str:
    response = await client.post("/v1/projects", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def create_workflow(
    client: httpx.AsyncClient, steps: list[dict[str, Any]], name: str = "workflow"
) -> dict[str, Any]:
    project_id = await create_project(client, f"project of {name}")
    response = await client.post(
        "/v1/workflows", json={"project_id": project_id, "name": name, "steps": steps}
    )
    assert response.status_code == 201, response.text
    return response.json()


def postgres_connection(url: str, name: str = "crm") -> dict[str, Any]:
    """A `postgres` connection body for the database at ``url``."""
    conninfo = psycopg_conninfo(url)
    return {
        "name": name,
        "kind": "postgres",
        "config": {k: conninfo[k] for k in ("host", "port", "dbname", "user")},
        "secret": {"password": "unused-with-trust-auth"},
    }


def pending_event(url: str) -> tuple[dict[str, str], bytes]:
    """The oldest pending outbox row as the HTTP request a function would receive."""
    with psycopg.connect(url, row_factory=dict_row) as conn:
        row = conn.execute(
            "SELECT attributes, data FROM outbox WHERE status = 'pending' ORDER BY id LIMIT 1"
        ).fetchone()
    message = to_binary_event(to_cloudevent(row["attributes"], row["data"]))
    return message.headers, message.body


def psycopg_conninfo(url: str) -> dict[str, str]:
    from psycopg.conninfo import conninfo_to_dict

    return conninfo_to_dict(url)


Predicate = Callable[[], bool]


def eventually(predicate: Predicate, timeout_s: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} not reached in {timeout_s}s")


class Tenant:
    """An account written straight into the platform database, its stored connections
    (as an old row or a bypassed API would hold them: nothing validated), and a step
    of its run by a handler in this process."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.account_id = uuid.uuid4()
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("INSERT INTO accounts (id, name) VALUES (%s, 'tenant')",
                         (self.account_id,))

    def store(self, name: str, kind: str, config: dict[str, Any],
              secret: dict[str, Any] | None = None) -> str:
        sealed = SecretBox(SECRET_KEY).seal(secret) if secret else None
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO connections (account_id, name, kind, config, secret) "
                "VALUES (%s, %s, %s, %s, %s)", (self.account_id, name, kind, Jsonb(config), sealed))
        return name

    def context(self, runtime: StepRuntime, config: dict[str, Any], key: str = "step") -> Context:
        packet = Packet(payload={}, account=Ref(id=self.account_id), job=Ref(id=uuid.uuid4()),
                        workflow=WorkflowRef(id=uuid.uuid4(), version=1),
                        step=StepRef(id=uuid.uuid4(), key=key), process=ProcessRef(id=uuid.uuid4()))
        step = Step(id=packet.step.id, workflow_id=packet.workflow.id, key=key, name=None,
                    function=runtime.handler.spec.name, config=config, next_key=None,
                    output=None, retry=RetryPolicy())
        # typed by the function's config model, as the runtime does before a handler runs
        typed = runtime.handler.spec.config.model_validate(config)
        return Context(packet=packet, step=step, config=typed, runtime=runtime)

    async def run(self, runtime: StepRuntime, config: dict[str, Any]) -> Any:
        return await runtime.handler.run(self.context(runtime, config))
