"""A workflow runs end to end on one machine: real function servers (func-python), the
relay over HTTP, this machine's PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from support import (
    ItemsApi,
    all_processes,
    control_plane,
    create_workflow,
    platform,
    postgres_connection,
    wait_for_job,
)

pytestmark = pytest.mark.slow

FUNCTIONS = ["Http.request", "Database.query"]


def import_steps(url: str, *, backoff_s: float = 0.05) -> list[dict]:
    return [
        {"key": "start", "function": "Manual", "output": "single", "next": "fetch"},
        {
            "key": "fetch",
            "function": "Http.request",
            "config": {"url": url, "items_path": "items"},
            "output": "multiple",
            "next": "save",
            "retry": {"attempts": 5, "backoff_s": backoff_s},
        },
        {
            "key": "save",
            "function": "Database.query",
            "config": {
                "connection": "crm",
                "sql": "INSERT INTO items (id, name) VALUES (:id, :name)",
                "result": "rowcount",
            },
            "output": None,
            "next": None,
        },
    ]


def make_items_table(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)")


def count_items(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM items").fetchone()[0]


async def test_fifty_items_fetched_fanned_out_and_written_once(
    database_url: str, empty_database_url: str, tmp_path: Path
) -> None:
    make_items_table(empty_database_url)
    with ItemsApi(50) as api, platform(database_url, FUNCTIONS, tmp_path):
        async with control_plane(database_url) as client:
            assert (
                await client.post("/v1/connections", json=postgres_connection(empty_database_url))
            ).status_code == 201
            workflow = await create_workflow(client, import_steps(api.url))
            started = await client.post(
                f"/v1/workflows/{workflow['id']}/jobs", json={"payload": {"requested_by": "test"}}
            )
            assert started.status_code == 201, started.text
            job = await wait_for_job(client, started.json()["id"])
            processes = await all_processes(client, job["id"])

    assert job["status"] == "succeeded"
    assert job["counts"]["succeeded"] == 52 and job["counts"]["total"] == 52
    assert count_items(empty_database_url) == 50
    by_step = {
        key: [p for p in processes if p["step_key"] == key] for key in ("start", "fetch", "save")
    }
    assert [len(by_step[k]) for k in ("start", "fetch", "save")] == [1, 1, 50]
    fetch = by_step["fetch"][0]
    assert fetch["parent_id"] == by_step["start"][0]["id"]
    assert len(fetch["output"]) == 50
    assert {p["parent_id"] for p in by_step["save"]} == {fetch["id"]}
    assert sorted(p["input"]["id"] for p in by_step["save"]) == list(range(50))
    for p in processes:
        assert p["status"] == "succeeded"
        assert p["started_at"] and p["finished_at"] and p["input"] is not None
    assert all(p["output"] == {"rowcount": 1} for p in by_step["save"])


async def test_a_step_failing_temporarily_twice_is_delivered_three_times_with_one_result(
    database_url: str, empty_database_url: str, tmp_path: Path
) -> None:
    make_items_table(empty_database_url)
    with ItemsApi(5, failures=2) as api, platform(database_url, FUNCTIONS, tmp_path):
        async with control_plane(database_url) as client:
            await client.post("/v1/connections", json=postgres_connection(empty_database_url))
            workflow = await create_workflow(client, import_steps(api.url))
            started = await client.post(f"/v1/workflows/{workflow['id']}/jobs", json={})
            job = await wait_for_job(client, started.json()["id"])
            processes = await all_processes(client, job["id"])

    assert job["status"] == "succeeded"
    assert api.calls == 3
    fetch = next(p for p in processes if p["step_key"] == "fetch")
    assert fetch["attempt"] == 3 and fetch["status"] == "succeeded"
    assert [log["level"] for log in fetch["logs"]].count("warning") == 2
    assert count_items(empty_database_url) == 5
    with psycopg.connect(database_url) as conn:
        deliveries = conn.execute(
            "SELECT count(*) FROM outbox WHERE process_id = %s AND status = 'sent'", (fetch["id"],)
        ).fetchone()[0]
    assert deliveries == 3
