"""Workflow.call: the parent waits for its child without holding a worker, continues
with the child's result, fails when the child fails, and recursion stops at the depth
limit."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from support import (
    all_processes,
    control_plane,
    create_workflow,
    eventually,
    platform,
    wait_for_job,
)

pytestmark = pytest.mark.slow
FUNCTIONS = ["Workflow.call", "Transform", "Database.query"]


def parent_steps(child_id: str) -> list[dict]:
    return [
        {"key": "start", "function": "Manual", "next": "call"},
        {
            "key": "call",
            "function": "Workflow.call",
            "config": {"workflow_id": child_id},
            "next": "after",
        },
        {
            "key": "after",
            "function": "Transform",
            "config": {"expression": "{result: @}"},
            "output": None,
        },
    ]


async def test_the_parent_continues_with_the_childs_result(
    database_url: str, tmp_path: Path
) -> None:
    with platform(database_url, FUNCTIONS, tmp_path):
        async with control_plane(database_url) as client:
            child = await create_workflow(
                client,
                [
                    {"key": "start", "function": "Manual", "next": "shape"},
                    {
                        "key": "shape",
                        "function": "Transform",
                        "config": {"expression": "{got: n}"},
                        "output": None,
                    },
                ],
                name="child",
            )
            parent = await create_workflow(client, parent_steps(child["id"]), name="parent")
            started = await client.post(
                f"/v1/workflows/{parent['id']}/jobs", json={"payload": {"n": 5}}
            )
            job = await wait_for_job(client, started.json()["id"])
            processes = {p["step_key"]: p for p in await all_processes(client, job["id"])}
    assert job["status"] == "succeeded", job
    assert processes["call"]["output"] == {"got": 5}
    assert processes["after"]["output"] == {"result": {"got": 5}}
    assert any("started child job" in log["message"] for log in processes["call"]["logs"])
    with psycopg.connect(database_url) as conn:
        jobs = conn.execute("SELECT trigger, status, depth FROM jobs ORDER BY depth").fetchall()
    assert jobs == [("manual", "succeeded", 0), ("call", "succeeded", 1)]


async def test_a_failed_child_fails_the_parent(database_url: str, tmp_path: Path) -> None:
    with platform(database_url, FUNCTIONS, tmp_path):
        async with control_plane(database_url) as client:
            child = await create_workflow(
                client,
                [
                    {"key": "start", "function": "Manual", "next": "write"},
                    {
                        "key": "write",
                        "function": "Database.query",
                        "output": None,
                        "config": {"connection": "missing", "sql": "SELECT 1"},
                    },
                ],
                name="child",
            )
            parent = await create_workflow(client, parent_steps(child["id"]), name="parent")
            started = await client.post(f"/v1/workflows/{parent['id']}/jobs", json={})
            job = await wait_for_job(client, started.json()["id"])
            processes = {p["step_key"]: p for p in await all_processes(client, job["id"])}
    assert job["status"] == "failed"
    assert processes["call"]["status"] == "failed"
    assert "ended failed" in processes["call"]["error"]["message"]
    assert "after" not in processes


async def test_recursion_is_refused_at_the_depth_limit(database_url: str, tmp_path: Path) -> None:
    with platform(database_url, FUNCTIONS, tmp_path):
        async with control_plane(database_url) as client:
            loop = await create_workflow(
                client, parent_steps("00000000-0000-4000-8000-000000000000"), name="loop"
            )
            steps = parent_steps(loop["id"])
            replaced = await client.put(
                f"/v1/workflows/{loop['id']}", json={"name": "loop", "steps": steps}
            )
            assert replaced.status_code == 200, replaced.text
            started = await client.post(f"/v1/workflows/{loop['id']}/jobs", json={})
            job = await wait_for_job(client, started.json()["id"])
    assert job["status"] == "failed"
    with psycopg.connect(database_url) as conn:
        depths = [r[0] for r in conn.execute("SELECT depth FROM jobs ORDER BY depth")]
        error = conn.execute(
            "SELECT p.error->>'message' FROM processes p JOIN jobs j "
            "ON j.id = p.job_id WHERE j.depth = 5 AND p.step_key = 'call'"
        ).fetchone()[0]
    assert depths == [0, 1, 2, 3, 4, 5]
    assert "deeper than 5" in error


def child_that_waits() -> list[dict]:
    """A child whose step never runs here: its function has no server in this platform,
    so the child stays running until someone cancels it."""
    return [
        {"key": "start", "function": "Manual", "next": "never"},
        {"key": "never", "function": "Condition", "output": "single",
         "config": {"branches": [{"when": "true", "next": "end"}]}},
        {"key": "end", "function": "Transform", "config": {"expression": "@"}, "output": None},
    ]


async def running_call(client, database_url: str) -> tuple[str, str]:
    """A parent job whose call step waits for a child that stays running: both ids."""
    child = await create_workflow(client, child_that_waits(), name="child")
    parent = await create_workflow(client, parent_steps(child["id"]), name="parent")
    started = await client.post(f"/v1/workflows/{parent['id']}/jobs", json={})
    parent_job = started.json()["id"]

    def child_job() -> str | None:
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT id FROM jobs WHERE trigger = 'call'").fetchone()
        return str(row[0]) if row else None

    eventually(lambda: child_job() is not None, what="the child job")
    return parent_job, child_job()


def statuses(database_url: str) -> dict[str, str]:
    with psycopg.connect(database_url) as conn:
        return dict(conn.execute("SELECT trigger, status FROM jobs").fetchall())


async def test_cancelling_the_parent_cancels_its_child(database_url: str, tmp_path: Path) -> None:
    with platform(database_url, FUNCTIONS, tmp_path):
        async with control_plane(database_url) as client:
            parent_job, _ = await running_call(client, database_url)
            cancelled = await client.post(f"/v1/jobs/{parent_job}/cancel")
            assert cancelled.status_code == 200, cancelled.text
    assert statuses(database_url) == {"manual": "cancelled", "call": "cancelled"}
    with psycopg.connect(database_url) as conn:
        outstanding = conn.execute("SELECT count(*) FROM processes WHERE status IN "
                                   "('pending', 'running')").fetchone()[0]
    assert outstanding == 0


async def test_cancelling_the_child_fails_the_waiting_parent(
    database_url: str, tmp_path: Path
) -> None:
    with platform(database_url, FUNCTIONS, tmp_path):
        async with control_plane(database_url) as client:
            parent_job, child_job = await running_call(client, database_url)
            assert (await client.post(f"/v1/jobs/{child_job}/cancel")).status_code == 200
            job = await wait_for_job(client, parent_job)
            processes = {p["step_key"]: p for p in await all_processes(client, job["id"])}
    assert job["status"] == "failed"
    assert "ended cancelled" in processes["call"]["error"]["message"]


async def test_a_retried_call_starts_a_new_child(database_url: str, tmp_path: Path) -> None:
    failing = [
        {"key": "start", "function": "Manual", "next": "write"},
        {"key": "write", "function": "Database.query", "output": None,
         "config": {"connection": "missing", "sql": "SELECT 1"}},
    ]
    fixed = [
        {"key": "start", "function": "Manual", "next": "shape"},
        {"key": "shape", "function": "Transform", "config": {"expression": "{fixed: `true`}"},
         "output": None},
    ]
    with platform(database_url, FUNCTIONS, tmp_path):
        async with control_plane(database_url) as client:
            child = await create_workflow(client, failing, name="child")
            parent = await create_workflow(client, parent_steps(child["id"]), name="parent")
            started = await client.post(f"/v1/workflows/{parent['id']}/jobs",
                                        json={"payload": {"n": 1}})
            job = await wait_for_job(client, started.json()["id"])
            assert job["status"] == "failed"
            call = next(p for p in await all_processes(client, job["id"])
                        if p["step_key"] == "call")
            replaced = await client.put(f"/v1/workflows/{child['id']}",
                                        json={"name": "child", "steps": fixed})
            assert replaced.status_code == 200, replaced.text
            assert (await client.post(f"/v1/processes/{call['id']}/retry")).status_code == 200
            job = await wait_for_job(client, job["id"])
            processes = {p["step_key"]: p for p in await all_processes(client, job["id"])}
    assert job["status"] == "succeeded", processes
    assert processes["after"]["output"] == {"result": {"fixed": True}}
    with psycopg.connect(database_url) as conn:
        children = conn.execute("SELECT status FROM jobs WHERE trigger = 'call' "
                                "ORDER BY created_at").fetchall()
    assert children == [("failed",), ("succeeded",)]
