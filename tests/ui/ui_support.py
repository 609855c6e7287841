"""The web UI's browser tests: the control plane served over real HTTP (uvicorn in a
thread of this process, UI included), Debian's chromium driven by Playwright, and the
screenshots CI keeps."""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn

import support
from stepline_control import ui
from stepline_control.app import create_app
from stepline_control.onemachine.children import free_port

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "tests" / "artifacts" / "screenshots"
ADMIN_URL = os.environ.get("STEPLINE_TEST_ADMIN_URL",
                           "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM = os.environ.get("STEPLINE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# as python-svc.md asks: without the background-networking flags Chromium keeps trying
# to reach Google's hosts on this machine's closed network
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1440, "height": 900}
START_TIMEOUT_S = 20.0


def unavailable(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is required in CI")
    pytest.skip(f"{what} is not available here")


def require_browser() -> str:
    if not Path(CHROMIUM).is_file():
        unavailable(f"chromium ({CHROMIUM}; `make browser` installs Debian's)")
    if not (ui.ui_dir() / "index.html").is_file():
        unavailable(f"the built web UI ({ui.ui_dir()}; `make ui` builds it)")
    return CHROMIUM


@contextmanager
def cloned_database(template: str) -> Iterator[str]:
    """A database of its own for the module, cloned from the migrated template."""
    name = f"stepline_ui_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def app_with_ui(database_url: str):
    """The control plane's application, with the UI router added if app.py does not
    list it yet."""
    app = create_app(support.settings_for(database_url))
    if not any(getattr(route, "path", None) == "/ui/{path:path}" for route in app.routes):
        app.include_router(ui.router)
    return app


@dataclass
class LiveServer:
    url: str
    server: uvicorn.Server
    thread: threading.Thread
    token: str = support.TOKEN
    _clients: list[httpx.Client] = field(default_factory=list)

    def client(self, token: str | None = None) -> httpx.Client:
        client = httpx.Client(base_url=self.url, timeout=30.0,
                              headers={"Authorization": f"Bearer {token or self.token}"})
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()


@contextmanager
def live_server(database_url: str) -> Iterator[LiveServer]:
    port = free_port()
    config = uvicorn.Config(app_with_ui(database_url), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="on", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="control-plane", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the control plane did not start")
        time.sleep(0.05)
    live = LiveServer(url=f"http://127.0.0.1:{port}", server=server, thread=thread)
    try:
        yield live
    finally:
        live.close()
        server.should_exit = True
        thread.join(timeout=10)


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def wait_for_job(client: httpx.Client, job_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] != "running":
            return job
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id} still running after {timeout_s}s")


def create_workflow(client: httpx.Client, project_name: str, name: str,
                    steps: list[dict[str, Any]]) -> dict[str, Any]:
    project = client.post("/v1/projects", json={"name": project_name})
    assert project.status_code == 201, project.text
    created = client.post("/v1/workflows", json={"project_id": project.json()["id"],
                                                 "name": name, "steps": steps})
    assert created.status_code == 201, created.text
    return created.json()


def start_job(client: httpx.Client, workflow_id: str, payload: Any) -> str:
    response = client.post(f"/v1/workflows/{workflow_id}/jobs", json={"payload": payload})
    assert response.status_code == 201, response.text
    return response.json()["id"]
