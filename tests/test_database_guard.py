"""A tenant's `postgres` connection reaches only what the address guard lets through:
not the platform's own database by loopback, by its socket folder or by a private
address, and not by a libpq key that redirects the connection. Tried against this
machine's real PostgreSQL, which trusts local connections: a connection the guard let
through would read ``pg_shadow`` as a superuser."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from stepline.db import create_pool
from stepline.errors import PermanentError
from stepline.settings import Settings
from stepline.step import StepRuntime
from support import (
    SECRET_KEY,
    Tenant,
    all_processes,
    control_plane,
    create_workflow,
    platform,
    psycopg_conninfo,
    wait_for_job,
)

ROOT = Path(__file__).resolve().parents[1]
READ_THE_PLATFORM = "SELECT current_user, usename, passwd FROM pg_shadow"


def database_query_handler():
    spec = importlib.util.spec_from_file_location(
        "func_database_query", ROOT / "functions" / "database-query" / "function" / "func.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.DatabaseQuery()


def socket_folder(database_url: str) -> str:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SHOW unix_socket_directories").fetchone()[0].split(",")[0].strip()


@pytest.fixture
async def runtime(database_url: str) -> AsyncIterator[StepRuntime]:
    pool = create_pool(database_url, min_size=0, max_size=2)
    await pool.open()
    runtime = StepRuntime(pool=pool, handler=database_query_handler(),
                          settings=Settings(secret_key=SECRET_KEY, http_allow_cidrs=""))
    try:
        yield runtime
    finally:
        for tenant_pool in runtime.handler._pools.values():
            await tenant_pool.close()
        await pool.close()


def platform_target(database_url: str) -> dict[str, Any]:
    conninfo = psycopg_conninfo(database_url)
    return {"port": int(conninfo["port"]), "dbname": conninfo["dbname"], "user": "postgres",
            "connect_timeout": 2}


ATTACKS = {
    "loopback address": {"host": "127.0.0.1"},
    "loopback name": {"host": "localhost"},
    "abstract socket": {"host": "@stepline"},
    "empty host (the default socket)": {"host": ""},
    "no host (the default socket)": {},
    "private address": {"host": "10.255.255.1"},
    "IPv4 in IPv6 (NAT64)": {"host": "64:ff9b::7f00:1"},
    "several hosts": {"host": "db.invalid,127.0.0.1"},
    "hostaddr games": {"host": "db.invalid", "hostaddr": "127.0.0.1"},
    "a service file": {"host": "db.invalid", "service": "platform"},
    "a password file": {"host": "db.invalid", "passfile": "/root/.pgpass"},
    "an option nobody allowed": {"host": "db.invalid", "target_session_attrs": "any"},
}


@pytest.mark.parametrize("attack", ATTACKS.values(), ids=ATTACKS.keys())
async def test_a_tenant_connection_cannot_reach_the_platform(
    database_url: str, runtime: StepRuntime, attack: dict[str, Any]
) -> None:
    tenant = Tenant(database_url)
    name = tenant.store("target", "postgres", {**platform_target(database_url), **attack},
                        {"password": "anything"})
    with pytest.raises(PermanentError) as refused:
        await tenant.run(runtime, {"connection": name, "sql": READ_THE_PLATFORM})
    assert "connection 'target'" in str(refused.value)
    assert runtime.handler._pools == {}  # no connection was ever opened


async def test_the_socket_folder_of_the_platform_database_is_refused(
    database_url: str, runtime: StepRuntime
) -> None:
    tenant = Tenant(database_url)
    folder = socket_folder(database_url)
    name = tenant.store("target", "postgres", {**platform_target(database_url), "host": folder})
    with pytest.raises(PermanentError, match="unix socket"):
        await tenant.run(runtime, {"connection": name, "sql": READ_THE_PLATFORM})
    assert runtime.handler._pools == {}


async def test_an_allow_listed_network_is_reached_at_the_checked_address(
    database_url: str, empty_database_url: str
) -> None:
    pool = create_pool(database_url, min_size=0, max_size=2)
    await pool.open()
    runtime = StepRuntime(pool=pool, handler=database_query_handler(),
                          settings=Settings(secret_key=SECRET_KEY,
                                            http_allow_cidrs="127.0.0.0/8,::1/128"))
    try:
        tenant = Tenant(database_url)
        name = tenant.store("tenant", "postgres", {**platform_target(empty_database_url),
                                                   "host": "localhost", "application_name": "t"})
        rows = await tenant.run(runtime, {"connection": name, "sql": "SELECT current_database() "
                                          "AS db, inet_server_addr()::text AS address"})
        [conninfo] = runtime.handler._pools
    finally:
        for tenant_pool in runtime.handler._pools.values():
            await tenant_pool.close()
        await pool.close()
    assert rows[0]["db"] == psycopg_conninfo(empty_database_url)["dbname"]
    assert rows[0]["address"].split("/")[0] in ("127.0.0.1", "::1")
    assert "hostaddr=" in conninfo and "host=localhost" in conninfo


@pytest.mark.slow
async def test_through_the_api_a_tenant_reads_nothing_of_the_platform(
    database_url: str, tmp_path: Path
) -> None:
    """The attack as a tenant would run it: its own connections to the platform's
    address and to a private one, a workflow reading ``pg_shadow``; on a platform whose
    operator allow-listed nothing."""
    targets = {"platform": {**platform_target(database_url), "host": "127.0.0.1"},
               "internal": {**platform_target(database_url), "host": "10.255.255.1"}}
    no_allow_list = {"STEPLINE_HTTP_ALLOW_CIDRS": ""}
    with platform(database_url, ["Database.query"], tmp_path, env=no_allow_list):
        async with control_plane(database_url) as operator:
            account = (await operator.post("/v1/accounts", json={"name": "attacker"})).json()
            token = account["admin_token"]["token"]
            operator.headers["Authorization"] = f"Bearer {token}"  # from here: the tenant
            jobs = [await steal_through(operator, name, config)
                    for name, config in targets.items()]
            ended = [await wait_for_job(operator, job_id) for job_id in jobs]
            processes = [await all_processes(operator, job["id"]) for job in ended]
    assert [job["status"] for job in ended] == ["failed", "failed"]
    for steps, host in zip(processes, ("127.0.0.1", "10.255.255.1"), strict=True):
        [steal] = [p for p in steps if p["step_key"] == "steal"]
        assert steal["status"] == "failed" and steal["output"] is None
        assert steal["error"]["type"] == "permanent" and steal["attempt"] == 1
        assert host in steal["error"]["message"]
        assert "STEPLINE_HTTP_ALLOW_CIDRS" in steal["error"]["message"]


async def steal_through(client, name: str, config: dict[str, Any]) -> str:
    created = await client.post("/v1/connections", json={
        "name": name, "kind": "postgres", "config": config, "secret": {"password": "x"}})
    assert created.status_code == 201, created.text
    workflow = await create_workflow(client, [
        {"key": "start", "function": "Manual", "output": "single", "next": "steal"},
        {"key": "steal", "function": "Database.query", "output": None,
         "config": {"connection": name, "sql": READ_THE_PLATFORM}},
    ], name=f"steal from {name}")
    started = await client.post(f"/v1/workflows/{workflow['id']}/jobs", json={})
    assert started.status_code == 201, started.text
    return started.json()["id"]
