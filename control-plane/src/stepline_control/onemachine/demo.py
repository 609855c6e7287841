"""The demo of ``make run``: a small catalog API on a loopback address of its own
(:data:`DEMO_HOST`), its database, and the workflow that reads the API, fans out and
writes each item with SQL.

Tenants' outbound calls may not reach loopback; ``make run`` allows the demo's address
alone (``127.0.0.2/32``, which Linux routes to ``lo`` like all of ``127.0.0.0/8``), so
no workflow reaches the control plane or a function server on ``127.0.0.1``. One
server listens on both addresses; :class:`ByAddress` answers the demo's address with
the demo API only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import psycopg
from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

DEMO_HOST = "127.0.0.2"
DEMO_ITEMS = 20
DEMO_WORKFLOW = "Demo: import the catalog"


def demo_app() -> FastAPI:
    """The small HTTP API the demo workflow reads."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    router = APIRouter(prefix="/demo")

    @router.get("/items")
    async def items() -> dict[str, Any]:
        return {"items": [{"id": i, "name": f"Widget {i}", "price": round(9.5 + i * 1.25, 2)}
                          for i in range(1, DEMO_ITEMS + 1)]}

    app.include_router(router)
    return app


class ByAddress:
    """One server, two addresses: a request that reached ``demo_host`` sees the demo
    API and nothing else; the platform answers every other one (and the lifespan)."""

    def __init__(self, platform: ASGIApp, demo: ASGIApp, *, demo_host: str) -> None:
        self.platform, self.demo, self.demo_host = platform, demo, demo_host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server") or ("", None)
        if scope["type"] != "lifespan" and server[0] == self.demo_host:
            return await self.demo(scope, receive, send)
        return await self.platform(scope, receive, send)


def demo_steps(demo_url: str) -> list[dict[str, Any]]:
    return [
        {"key": "start", "name": "Run by hand", "function": "Manual", "next": "fetch"},
        {"key": "fetch", "name": "Read the catalog API", "function": "Http.request",
         "config": {"url": f"{demo_url}/demo/items", "items_path": "items"},
         "output": "multiple", "next": "save"},
        {"key": "save", "name": "Upsert each item", "function": "Database.query",
         "config": {"connection": "demo-db", "result": "rowcount",
                    "sql": "INSERT INTO items (id, name, price) VALUES (:id, :name, :price) "
                           "ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
                           "price = excluded.price, imported_at = now()"},
         "output": None},
    ]


def prepare_demo_database(conninfo: dict[str, str]) -> None:
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS items (id int PRIMARY KEY, name text NOT NULL, "
                     "price numeric(10, 2), imported_at timestamptz NOT NULL DEFAULT now())")


async def create_demo(client: httpx.AsyncClient, *, demo_url: str, demo_db: dict[str, str],
                      state: Path) -> str:
    """The demo's project, connection and workflow, created once through the API; a
    workflow made by an earlier run on another port is pointed at this run's API."""
    if state.exists():
        workflow_id = json.loads(state.read_text())["workflow_id"]
        found = await client.get(f"/v1/workflows/{workflow_id}")
        if found.status_code == 200:
            await _follow(client, found.json(), demo_url)
            return workflow_id
    projects = (await client.get("/v1/projects")).json()["items"]
    project = next((p for p in projects if p["name"] == "Demo"), None)
    if project is None:
        project = (await client.post("/v1/projects", json={"name": "Demo"})).json()
    await client.post("/v1/connections", json={
        "name": "demo-db", "kind": "postgres",
        "config": {k: v for k, v in demo_db.items() if k in ("host", "port", "dbname", "user")},
        "secret": {"password": demo_db.get("password", "")},
    })
    response = await client.post("/v1/workflows", json={
        "project_id": project["id"], "name": DEMO_WORKFLOW, "steps": demo_steps(demo_url)})
    response.raise_for_status()
    workflow_id = response.json()["id"]
    state.write_text(json.dumps({"workflow_id": workflow_id}))
    return workflow_id


async def _follow(client: httpx.AsyncClient, workflow: dict[str, Any], demo_url: str) -> None:
    steps = demo_steps(demo_url)
    fetch = next((s for s in workflow["steps"] if s["key"] == "fetch"), None)
    if fetch is None or fetch["config"].get("url") == steps[1]["config"]["url"]:
        return
    response = await client.put(f"/v1/workflows/{workflow['id']}",
                                json={"name": workflow["name"], "steps": steps})
    response.raise_for_status()
