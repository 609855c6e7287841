"""Helpers of the schedule tests: CronJob workflows, a clock the test moves, a recorder of
ticks, and a view of what kmock's API server holds."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stepline_control.schedules.desired import DesiredSchedule, load_desired
from support import create_workflow

NAMESPACE = "stepline"
WAIT_S = 10.0


def cron_steps(schedule: str = "*/5 * * * *", timezone: str = "America/Sao_Paulo"
               ) -> list[dict[str, Any]]:
    return [
        {"key": "tick", "function": "CronJob",
         "config": {"schedule": schedule, "timezone": timezone, "payload": {}}, "next": "t"},
        {"key": "t", "function": "Transform", "config": {"expression": "@"}, "output": None},
    ]


async def cron_workflow(api: httpx.AsyncClient, schedule: str = "*/5 * * * *",
                        timezone: str = "America/Sao_Paulo", name: str = "cron") -> str:
    workflow = await create_workflow(api, cron_steps(schedule, timezone), name=name)
    return workflow["id"]


async def call(api: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> Any:
    response = await api.request(method, path, **kwargs)
    assert response.is_success, response.text
    return response.json() if response.content else None


async def replace_schedule(api: httpx.AsyncClient, workflow_id: str, schedule: str,
                           timezone: str) -> None:
    current = await call(api, "GET", f"/v1/workflows/{workflow_id}")
    await call(api, "PUT", f"/v1/workflows/{workflow_id}",
               json={"name": current["name"], "steps": cron_steps(schedule, timezone)})


async def schedule_of(sessions: async_sessionmaker[AsyncSession], workflow_id: str
                      ) -> DesiredSchedule:
    found = [s for s in await load_desired(sessions) if str(s.workflow_id) == workflow_id]
    assert len(found) == 1, found
    return found[0]


async def eventually(predicate: Any, what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached in {timeout_s}s")
        await asyncio.sleep(0.01)


class ManualClock:
    """Time stands still until the test moves it; sleepers wake when it passes them."""

    def __init__(self, now: datetime) -> None:
        self._now = now
        self._moved = asyncio.Event()
        self._sleepers: dict[int, datetime] = {}

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        key = id(asyncio.current_task())
        self._sleepers[key] = when
        try:
            while self._now < when:
                await self._moved.wait()
        finally:
            del self._sleepers[key]

    def idle(self) -> bool:
        """Someone sleeps until a time still to come: it has done all it had to."""
        return any(when > self._now for when in self._sleepers.values())

    def set(self, now: datetime) -> None:
        assert now >= self._now, "time does not go back"
        self._now, moved, self._moved = now, self._moved, asyncio.Event()
        moved.set()


class Recorder:
    """A local HTTP server that records every POST (headers lowercased, body) and answers
    with the next of ``statuses`` (202 once they run out)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                recorder.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = recorder.statuses.pop(0) if recorder.statuses else 202
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def ticks(self) -> list[dict[str, Any]]:
        """Each recorded request as its CloudEvent attributes plus ``data``."""
        return [{**{k[3:]: v for k, v in headers.items() if k.startswith("ce-")},
                 "content-type": headers.get("content-type"), "data": json.loads(body)}
                for headers, body in self.requests]


def stored(kmock: Any, plural: str) -> dict[str, dict[str, Any]]:
    """The live objects of one resource in kmock's API server, by name."""
    return {name: dict(obj.raw) for (resource, _ns, name), obj in kmock.objects.items()
            if resource.plural == plural and not obj.deleted}


class Intruder:
    """Another client of the API server, changing things behind the reconciler's back
    (plain HTTP: its requests are told apart from the adapter's by their user agent)."""

    USER_AGENT = "intruder"

    def __init__(self, kmock: Any) -> None:
        self._http = httpx.AsyncClient(base_url=str(kmock.url),
                                       headers={"user-agent": self.USER_AGENT})

    async def __aenter__(self) -> Intruder:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._http.aclose()

    @staticmethod
    def path(resource: Any, name: str | None = None) -> str:
        base = (f"/apis/{resource.group}/{resource.version}/namespaces/{NAMESPACE}/"
                f"{resource.plural}")
        return f"{base}/{name}" if name else base

    async def create(self, resource: Any, body: dict[str, Any]) -> None:
        (await self._http.post(self.path(resource), json=body)).raise_for_status()

    async def patch(self, resource: Any, name: str, patch: dict[str, Any]) -> None:
        response = await self._http.patch(
            self.path(resource, name), content=json.dumps(patch),
            headers={"content-type": "application/merge-patch+json"})
        response.raise_for_status()

    async def delete(self, resource: Any, name: str) -> None:
        (await self._http.delete(self.path(resource, name))).raise_for_status()
