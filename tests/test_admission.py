"""Admission at every process creation, not only at a job's start: a fan-out past the
monthly quota fails its step and makes nothing; concurrent starts never overshoot the
quota; a blocked account's pending work does not run; a paused workflow cannot be called."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest

from support import all_processes, control_plane, create_workflow, platform, wait_for_job

pytestmark = pytest.mark.slow
FUNCTIONS = ["Transform", "Workflow.call"]


def fan_out() -> list[dict]:
    return [
        {"key": "start", "function": "Manual", "next": "split"},
        {"key": "split", "function": "Transform", "config": {"expression": "items"},
         "output": "multiple", "next": "each"},
        {"key": "each", "function": "Transform", "config": {"expression": "@"}, "output": None},
    ]


def scalar(database_url: str, sql: str) -> object:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql).fetchone()[0]


async def test_a_fan_out_past_the_quota_fails_its_step_and_makes_nothing(
    database_url: str, tmp_path: Path
) -> None:
    with platform(database_url, FUNCTIONS, tmp_path):
        async with control_plane(database_url) as client:
            flow = await create_workflow(client, fan_out())
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute("UPDATE accounts SET monthly_quota = 10")
            started = await client.post(f"/v1/workflows/{flow['id']}/jobs",
                                        json={"payload": {"items": list(range(20))}})
            assert started.status_code == 201, started.text
            job = await wait_for_job(client, started.json()["id"])
            processes = {p["step_key"]: p for p in await all_processes(client, job["id"])}
    assert job["status"] == "failed"
    assert processes["split"]["status"] == "failed"
    assert processes["split"]["error"]["type"] == "refused"
    assert "monthly quota of 10" in processes["split"]["error"]["message"]
    assert "each" not in processes
    assert scalar(database_url, "SELECT count(*) FROM processes") == 2
    assert scalar(database_url, "SELECT sum(processes) FROM quota_usage") == 2


async def test_concurrent_starts_never_overshoot_the_quota(database_url: str) -> None:
    steps = [{"key": "start", "function": "Manual", "next": "work"},
             {"key": "work", "function": "Transform", "config": {"expression": "@"},
              "output": None}]
    async with control_plane(database_url) as client:
        flow = await create_workflow(client, steps)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("UPDATE accounts SET monthly_quota = 7")
        answers = await asyncio.gather(*(
            client.post(f"/v1/workflows/{flow['id']}/jobs", json={}) for _ in range(12)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * 3 + [429] * 9  # two processes a job: 3 jobs fit in 7
    assert scalar(database_url, "SELECT count(*) FROM processes") == 6
    assert scalar(database_url, "SELECT sum(processes) FROM quota_usage") == 6


async def test_a_blocked_accounts_pending_work_does_not_run(
    database_url: str, tmp_path: Path
) -> None:
    steps = [{"key": "start", "function": "Manual", "next": "work"},
             {"key": "work", "function": "Transform", "config": {"expression": "@"},
              "output": None}]
    async with control_plane(database_url) as client:
        flow = await create_workflow(client, steps)
        started = await client.post(f"/v1/workflows/{flow['id']}/jobs", json={"payload": 1})
        accounts = (await client.get("/v1/accounts")).json()["items"]
        blocked = await client.post(f"/v1/accounts/{accounts[0]['id']}/block",
                                    json={"reason": "unpaid invoice"})
        assert blocked.status_code == 200, blocked.text
        with platform(database_url, FUNCTIONS, tmp_path):  # the work comes due only now
            job = await wait_for_job(client, started.json()["id"])
        processes = {p["step_key"]: p for p in await all_processes(client, job["id"])}
    assert job["status"] == "failed"
    assert processes["work"]["error"]["type"] == "refused"
    assert "unpaid invoice" in processes["work"]["error"]["message"]
    assert processes["work"]["output"] is None
    assert scalar(database_url, "SELECT count(*) FROM dead_letters") == 1


async def test_a_paused_workflow_cannot_be_called(database_url: str, tmp_path: Path) -> None:
    child_steps = [{"key": "start", "function": "Manual", "next": "work"},
                   {"key": "work", "function": "Transform", "config": {"expression": "@"},
                    "output": None}]
    with platform(database_url, FUNCTIONS, tmp_path):
        async with control_plane(database_url) as client:
            child = await create_workflow(client, child_steps, name="child")
            parent = await create_workflow(client, [
                {"key": "start", "function": "Manual", "next": "call"},
                {"key": "call", "function": "Workflow.call",
                 "config": {"workflow_id": child["id"]}, "output": None},
            ], name="parent")
            assert (await client.post(f"/v1/workflows/{child['id']}/pause")).status_code == 200
            started = await client.post(f"/v1/workflows/{parent['id']}/jobs", json={})
            job = await wait_for_job(client, started.json()["id"])
            processes = {p["step_key"]: p for p in await all_processes(client, job["id"])}
    assert job["status"] == "failed"
    assert "paused" in processes["call"]["error"]["message"]
    assert scalar(database_url, "SELECT count(*) FROM jobs") == 1
