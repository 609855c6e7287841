"""The documented limits hold with a clear error and nothing half-written: a response
past what a step may read, a step output past what is kept, a fan-out past what one step
sends on, a text PostgreSQL cannot store, a Webhook body past its limit, and a relay row
too large to carry — each fails its process (its job ends), none stalls anything."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from stepline.db import create_pool
from stepline.messages import FAN_OUT_MAX
from stepline.outbound import RESPONSE_MAX_BYTES
from stepline.step import OUTPUT_MAX_BYTES
from stepline_relay.http import HttpTransport
from stepline_relay.relay import Relay, RelayOptions
from support import (
    LocalHttp,
    Reply,
    all_processes,
    control_plane,
    create_workflow,
    platform,
    wait_for_job,
)

pytestmark = pytest.mark.slow


class Answers(LocalHttp):
    """A local API answering GET /<name> with a body made for the test."""

    def __init__(self, bodies: dict[str, bytes]) -> None:
        self.bodies = bodies
        super().__init__(self._respond)

    def _respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        return 200, {"content-type": "application/json"}, self.bodies[path.lstrip("/")]


async def run_fetch(client, url: str, output: str | None = "single") -> dict:
    steps = [{"key": "start", "function": "Manual", "next": "fetch"},
             {"key": "fetch", "function": "Http.request", "config": {"url": url},
              "output": None}]
    flow = await create_workflow(client, steps, name=url.rsplit("/", 1)[-1])
    started = await client.post(f"/v1/workflows/{flow['id']}/jobs", json={})
    job = await wait_for_job(client, started.json()["id"])
    fetch = next(p for p in await all_processes(client, job["id"]) if p["step_key"] == "fetch")
    return {"job": job, "fetch": fetch}


async def test_what_a_step_reads_keeps_and_stores_is_bounded(
    database_url: str, tmp_path: Path
) -> None:
    huge = b'"' + b"x" * (RESPONSE_MAX_BYTES + 1) + b'"'
    big = json.dumps(["y" * 1024] * (OUTPUT_MAX_BYTES // 1024 + 8)).encode()
    with Answers({"huge": huge, "big": big, "nul": b'{"text": "a\\u0000b"}'}) as api, \
            platform(database_url, ["Http.request"], tmp_path):
        async with control_plane(database_url) as client:
            found = {name: await run_fetch(client, f"{api.base}/{name}")
                     for name in ("huge", "big", "nul")}
    for name, expected in (("huge", f"more than {RESPONSE_MAX_BYTES} bytes"),
                           ("big", f"at most {OUTPUT_MAX_BYTES}"),
                           ("nul", "cannot be stored")):
        assert found[name]["job"]["status"] == "failed", name
        assert found[name]["fetch"]["status"] == "failed", name
        assert expected in found[name]["fetch"]["error"]["message"], found[name]["fetch"]


async def test_a_fan_out_past_the_limit_fails_its_step(database_url: str, tmp_path: Path) -> None:
    steps = [{"key": "start", "function": "Manual", "next": "split"},
             {"key": "split", "function": "Transform", "config": {"expression": "@"},
              "output": "multiple", "next": "each"},
             {"key": "each", "function": "Transform", "config": {"expression": "@"},
              "output": None}]
    with platform(database_url, ["Transform"], tmp_path):
        async with control_plane(database_url) as client:
            flow = await create_workflow(client, steps)
            started = await client.post(f"/v1/workflows/{flow['id']}/jobs",
                                        json={"payload": [0] * (FAN_OUT_MAX + 1)})
            assert started.status_code == 201, started.text
            job = await wait_for_job(client, started.json()["id"])
            processes = await all_processes(client, job["id"])
    assert job["status"] == "failed"
    split = next(p for p in processes if p["step_key"] == "split")
    assert f"at most {FAN_OUT_MAX}" in split["error"]["message"]
    assert len(processes) == 2  # nothing of the fan-out was made


async def test_a_relay_row_too_large_to_carry_fails_its_process(
    database_url: str, tmp_path: Path
) -> None:
    steps = [{"key": "start", "function": "Manual", "next": "work"},
             {"key": "work", "function": "Transform", "config": {"expression": "@"},
              "output": None}]
    async with control_plane(database_url) as client:
        flow = await create_workflow(client, steps)
        started = await client.post(f"/v1/workflows/{flow['id']}/jobs",
                                    json={"payload": {"text": "z" * 50_000}})
        pool: AsyncConnectionPool = create_pool(database_url)
        await pool.open()
        try:
            relay = Relay(database_url=database_url, pool=pool, transport=HttpTransport(
                function_urls={}), options=RelayOptions(row_max_bytes=100))
            assert await relay.pump_once() == 1
        finally:
            await pool.close()
        job = await wait_for_job(client, started.json()["id"])
        work = next(p for p in await all_processes(client, job["id"])
                    if p["step_key"] == "work")
    assert job["status"] == "failed" and work["status"] == "failed"
    assert "more than a message may carry" in work["error"]["message"]
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT status FROM outbox").fetchone()[0] == "dead"
        assert conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0] == 1


async def test_a_webhook_body_past_its_limit_is_a_413(database_url: str, tmp_path: Path) -> None:
    from stepline.host import BODY_MAX_BYTES
    from stepline_control.onemachine.children import url_of
    from support import post, running_function

    with running_function("Webhook", database_url, tmp_path) as webhook:
        response = await asyncio.to_thread(
            post, url_of(webhook) + "00000000-0000-4000-8000-000000000000",
            content=b"[" + b"0," * BODY_MAX_BYTES + b"0]",
            headers={"content-type": "application/json"})
    assert response.status_code == 413
