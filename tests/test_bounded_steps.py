"""Runaway expressions on real function servers: a Condition whose CEL `when` would run
for seconds, a Transform whose JMESPath doubles forty times and an Http.request whose
template would loop 10^10 times each fail their step permanently with the limit named,
while a normal job of the same workflow, started beside the runaway one, succeeds."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from support import all_processes, control_plane, create_workflow, platform, wait_for_job

pytestmark = pytest.mark.slow

FUNCTIONS = ["Condition", "Transform", "Http.request"]
QUADRATIC = "size(payload.items.map(x, payload.items.map(y, y))) >= 0"
LOOP = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"


def steps() -> list[dict]:
    return [
        {"key": "start", "function": "Manual", "output": "single", "next": "pick"},
        {"key": "pick", "function": "Condition", "output": "single", "next": None,
         "config": {"branches": [{"when": QUADRATIC, "next": "reshape"}]}},
        {"key": "reshape", "function": "Transform", "output": "single", "next": "call",
         "config": {"expression": "@"}},
        {"key": "call", "function": "Http.request", "output": None, "next": None,
         "retry": {"attempts": 1},
         "config": {"url": "https://{{ payload.host }}/", "body": "{{ payload.body }}"}},
    ]


async def failure(client, job_id: str) -> tuple[str, str]:
    job = await wait_for_job(client, job_id)
    assert job["status"] == "failed", job
    failed = [p for p in await all_processes(client, job_id) if p["status"] == "failed"]
    return failed[0]["step_key"], failed[0]["error"]["message"]


async def test_runaway_steps_fail_with_the_limit_while_normal_ones_run(
    database_url: str, tmp_path: Path
) -> None:
    with platform(database_url, FUNCTIONS, tmp_path):
        async with control_plane(database_url) as client:
            plain = await create_workflow(client, steps())
            doubling = steps()
            doubling[2]["config"]["expression"] = "|".join(["[@, @][]"] * 40)
            doubled = await create_workflow(client, doubling, name="doubling")
            looping = steps()
            looping[3]["config"]["body"] = LOOP
            looped = await create_workflow(client, looping, name="looping")

            async def start(workflow: dict, payload: dict) -> str:
                response = await client.post(f"/v1/workflows/{workflow['id']}/jobs",
                                             json={"payload": payload})
                assert response.status_code == 201, response.text
                return response.json()["id"]

            # the normal job's last step fails on purpose (no such host): it ran
            small = {"items": [1, 2, 3], "host": "nowhere.invalid", "body": "x"}
            runaway = await start(plain, {**small, "items": list(range(400))})
            normal = await start(plain, small)
            doubling_job = await start(doubled, small)
            looping_job = await start(looped, small)
            step, message = await failure(client, normal)
            assert step == "call" and "exceeded" not in message
            results = await asyncio.gather(
                failure(client, runaway), failure(client, doubling_job),
                failure(client, looping_job))

    assert results[0] == ("pick", "branches[0].when exceeded 1 s")
    assert results[1] == ("reshape", "config.expression exceeded 1 s")
    assert results[2] == ("call", "the templates of config exceeded 1 s")
