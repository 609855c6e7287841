"""One delivery to a real function server (func-python), by hand: the same CloudEvent
twice changes nothing the second time; a malformed one is a 400 kept as a dead letter."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from stepline_control.onemachine.children import Child, url_of
from support import control_plane, create_workflow, pending_event, post, running_function

STEPS = [
    {"key": "start", "function": "Manual", "next": "shape"},
    {
        "key": "shape",
        "function": "Transform",
        "config": {"expression": "items[].{n: n}"},
        "output": "multiple",
        "next": "again",
    },
    {"key": "again", "function": "Transform", "config": {"expression": "n"}, "output": None},
]


@pytest.fixture
def transform(database_url: str, tmp_path: Path) -> Iterator[Child]:
    with running_function("Transform", database_url, tmp_path) as child:
        yield child


def snapshot(url: str) -> dict[str, Any]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return {
            "processes": conn.execute(
                "SELECT id, status, attempt, output FROM processes ORDER BY id"
            ).fetchall(),
            "outbox": conn.execute(
                "SELECT event_id, destination FROM outbox ORDER BY id"
            ).fetchall(),
            "inbox": conn.execute("SELECT count(*) AS n FROM inbox").fetchone()["n"],
            "jobs": conn.execute("SELECT status FROM jobs").fetchall(),
        }


async def start(database_url: str, payload: Any) -> str:
    async with control_plane(database_url) as client:
        workflow = await create_workflow(client, STEPS)
        response = await client.post(
            f"/v1/workflows/{workflow['id']}/jobs", json={"payload": payload}
        )
        assert response.status_code == 201, response.text
        return response.json()["id"]


async def test_the_same_event_twice_changes_nothing_the_second_time(
    database_url: str, transform: Child
) -> None:
    await start(database_url, {"items": [{"n": 1}, {"n": 2}, {"n": 3}]})
    headers, body = pending_event(database_url)
    first = post(url_of(transform), headers=headers, content=body)
    assert first.status_code == 200 and first.json() == {"outcome": "succeeded"}
    after_first = snapshot(database_url)
    assert len(after_first["processes"]) == 5  # start, shape, 3 x again
    second = post(url_of(transform), headers=headers, content=body)
    assert second.status_code == 200 and second.json() == {"outcome": "duplicate"}
    assert snapshot(database_url) == after_first


async def test_a_non_array_under_multiple_fails_the_process_with_a_clear_error(
    database_url: str, transform: Child
) -> None:
    await start(database_url, {"items": {"n": 1}})  # items[] of an object is null
    headers, body = pending_event(database_url)
    response = post(url_of(transform), headers=headers, content=body)
    assert response.json() == {"outcome": "failed"}
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        process = conn.execute("SELECT * FROM processes WHERE step_key = 'shape'").fetchone()
        job = conn.execute("SELECT status FROM jobs").fetchone()
        dead = conn.execute("SELECT * FROM dead_letters").fetchall()
    assert process["status"] == "failed"
    assert "output 'multiple'" in process["error"]["message"]
    assert "not an array" in process["error"]["message"]
    assert job["status"] == "failed"
    assert len(dead) == 1 and dead[0]["process_id"] == process["id"]


@pytest.mark.parametrize("mangle", ["wrong type", "not a packet", "unknown process"])
async def test_a_malformed_cloudevent_is_a_400_kept_as_a_dead_letter(
    database_url: str, transform: Child, mangle: str
) -> None:
    await start(database_url, {"items": []})
    headers, body = pending_event(database_url)
    headers = dict(headers, **{"ce-id": f"bad-{mangle.replace(' ', '-')}"})
    if mangle == "wrong type":
        headers["ce-type"] = "com.example.other"
    elif mangle == "not a packet":
        body = json.dumps({"payload": 1, "job": "nope"}).encode()
    else:
        packet = json.loads(body)
        packet["process"]["id"] = "00000000-0000-4000-8000-000000000000"
        body = json.dumps(packet).encode()
    before = snapshot(database_url)
    response = post(url_of(transform), headers=headers, content=body)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "MalformedEvent"
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        dead = conn.execute("SELECT * FROM dead_letters").fetchall()
    assert len(dead) == 1
    assert dead[0]["event_id"] == headers["ce-id"] and dead[0]["consumer"] == "Transform"
    assert dead[0]["reason"] and dead[0]["body"] == body.decode()
    assert snapshot(database_url) == before


def test_a_request_that_is_no_cloudevent_is_refused(transform: Child) -> None:
    response = post(url_of(transform), json={"hello": "world"})
    assert response.status_code == 400


async def test_a_process_finishing_after_its_job_was_cancelled_sends_nothing_on(
    database_url: str, transform: Child
) -> None:
    job_id = await start(database_url, {"items": [{"n": 1}, {"n": 2}]})
    headers, body = pending_event(database_url)
    with psycopg.connect(database_url) as conn:
        # the job is cancelled while the delivery is under way (its process running)
        conn.execute("UPDATE processes SET status = 'running' WHERE status = 'pending'")
        conn.execute("UPDATE jobs SET status = 'cancelled', finished_at = now()")
        conn.execute("UPDATE processes SET status = 'cancelled' WHERE job_id = %s", (job_id,))
    response = post(url_of(transform), headers=headers, content=body)
    assert response.json() == {"outcome": "cancelled"}
    with psycopg.connect(database_url) as conn:
        statuses = {
            r[0] for r in conn.execute("SELECT status FROM processes WHERE step_key != 'start'")
        }
        pending = conn.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()[0]
    assert statuses == {"cancelled"}
    assert pending == 1  # only the original message; no new ones


async def test_a_job_whose_end_check_was_lost_is_ended_by_the_sweep(database_url: str) -> None:
    from stepline.db import create_pool
    from stepline.lifecycle import finish_stale

    job_id = await start(database_url, {"items": []})
    with psycopg.connect(database_url) as conn:  # as if the last process committed, then crashed
        conn.execute("UPDATE processes SET status = 'succeeded'")
        conn.execute("UPDATE outbox SET status = 'sent'")
    pool = create_pool(database_url)
    await pool.open()
    try:
        async with pool.connection() as conn:
            assert await finish_stale(conn, min_age_s=3600) == 0  # too young to be swept
            assert await finish_stale(conn, min_age_s=0) == 1
    finally:
        await pool.close()
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT id, status FROM jobs").fetchone() == (
            uuid.UUID(job_id),
            "succeeded",
        )
