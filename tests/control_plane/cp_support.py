"""Helpers of the control plane's tests: one application in this process with a client
per token, accounts made through the API, and small definitions."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import psycopg
from fastapi import FastAPI

from stepline_control.app import create_app
from stepline_control.config import ControlSettings
from support import SECRET_KEY, TOKEN

BASE_URL = "http://control-plane"
CALL_TIMEOUT_S = 30.0


def control_settings_for(database_url: str, **extra: Any) -> ControlSettings:
    values = {"database_url": database_url, "bootstrap_token": TOKEN, "secret_key": SECRET_KEY,
              "retention_days": 0, "metrics_db_ttl_s": 0, **extra}
    return ControlSettings.model_construct(**ControlSettings.model_validate(values).model_dump())


class Api:
    """The application and a client per token, all closed with it."""

    def __init__(self, app: FastAPI, stack: AsyncExitStack) -> None:
        self.app, self._stack = app, stack
        self.operator = self._client(TOKEN)
        self.anonymous = self._client(None)

    def _client(self, token: str | None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),
                                   base_url=BASE_URL, headers=headers)
        self._stack.push_async_callback(client.aclose)
        return client

    def client(self, token: str) -> httpx.AsyncClient:
        return self._client(token)

    async def account(self, name: str, **fields: Any) -> tuple[dict[str, Any], httpx.AsyncClient]:
        """A new account (through the operator) and a client with its first admin token."""
        response = await self.operator.post("/v1/accounts", json={"name": name, **fields})
        assert response.status_code == 201, response.text
        account = response.json()
        return account, self.client(account["admin_token"]["token"])

    async def token(self, client: httpx.AsyncClient, role: str) -> httpx.AsyncClient:
        response = await client.post("/v1/tokens", json={"name": role, "role": role})
        assert response.status_code == 201, response.text
        return self.client(response.json()["token"])


@asynccontextmanager
async def api(database_url: str, **settings: Any) -> AsyncIterator[Api]:
    app = create_app(control_settings_for(database_url, **settings))
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        yield Api(app, stack)


def manual_then(function: str = "Transform", config: dict[str, Any] | None = None,
                **step: Any) -> list[dict[str, Any]]:
    """A Manual entry sending its payload to one action step that ends the branch."""
    return [
        {"key": "start", "function": "Manual", "output": "single", "next": "work"},
        {"key": "work", "function": function,
         "config": config if config is not None else {"expression": "@"},
         "output": None, "next": None, **step},
    ]


def manual_only() -> list[dict[str, Any]]:
    """A job that ends the moment it starts: one Manual step whose output goes nowhere."""
    return [{"key": "start", "function": "Manual", "output": None, "next": None}]


async def project(client: httpx.AsyncClient, name: str = "Tests") -> str:
    response = await client.post("/v1/projects", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def workflow(client: httpx.AsyncClient, steps: list[dict[str, Any]], *,
                   project_id: str | None = None, name: str = "workflow") -> dict[str, Any]:
    project_id = project_id or await project(client, f"project of {name}")
    response = await client.post("/v1/workflows", json={"project_id": project_id, "name": name,
                                                        "steps": steps})
    assert response.status_code == 201, response.text
    return response.json()


def dead_letter(database_url: str, account_id: str, process_id: str | None) -> int:
    """A dead letter of the account: of the failed process, or (None) a malformed event."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute(
            "INSERT INTO dead_letters (consumer, account_id, process_id, origin, reason, body) "
            "VALUES ('Transform', %s, %s, 'function', 'boom', '{}') RETURNING id",
            (account_id, process_id)).fetchone()[0]


class BlockingApi:
    """The API driven from synchronous code (hypothesis' ``@given``): one event loop in a
    thread holds the application; each call runs there and is waited for."""

    def __init__(self, database_url: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._database_url = database_url
        self._stack: AsyncExitStack | None = None
        self.api: Api | None = None

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(CALL_TIMEOUT_S)

    async def _open(self) -> Api:
        self._stack = AsyncExitStack()
        return await self._stack.enter_async_context(api(self._database_url))

    def __enter__(self) -> BlockingApi:
        self._thread.start()
        self.api = self.run(self._open())
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.run(self._stack.aclose())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(CALL_TIMEOUT_S)
            self._loop.close()

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.run(self.api.operator.post(url, **kwargs))
