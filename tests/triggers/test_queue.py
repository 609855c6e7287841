"""The Queue trigger on one machine, against this machine's RabbitMQ (a vhost of each
test's own): the platform consumes the step's queue with the RabbitmqSource adapter's
stand-in and the Queue function starts one job per message — acked only after the start
committed, a redelivery starting nothing new, what cannot start a job rejected to the
queue's dead-letter exchange and kept as a dead letter of the step, the consumer's state
in the step's health. Exact job counts, under the broker closing its connections
mid-stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from rabbitmq.broker import Vhost

from stepline_relay.mapping import AmqpMessage
from support import control_plane, create_workflow

from .queues import (
    DEAD_LETTER_QUEUE,
    QUEUE,
    TenantQueue,
    amqp_connection,
    consuming,
    jobs_of,
    json_message,
    queue_steps,
)

WAIT_S = 90.0


async def until(what: str, check: Callable[[], Any], timeout_s: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := check():
            return found
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{what}: not reached in {timeout_s}s")


def count(database_url: str, sql: str, *params: Any) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql, params).fetchone()[0]


async def queue_workflow(client, vhost: Vhost, **config: Any) -> dict[str, Any]:
    created = await client.post("/v1/connections", json=amqp_connection(vhost))
    assert created.status_code == 201, created.text
    return await create_workflow(client, queue_steps(**config), name="orders")


async def step_health(client, workflow: dict[str, Any]) -> dict[str, Any]:
    step = (await client.get(f"/v1/steps/{workflow['steps'][0]['id']}")).json()
    return step["health"]


async def test_each_message_starts_exactly_one_job(database_url: str, vhost: Vhost,
                                                    tmp_path: Path) -> None:
    tenant = TenantQueue(vhost)
    await tenant.declare()
    messages = [json_message({"order": n}, message_id=f"order-{n}") for n in range(30)]
    messages += [json_message({"order": n}) for n in range(30, 40)]  # no message_id
    await tenant.publish(messages)
    async with control_plane(database_url) as client:
        workflow = await queue_workflow(client, vhost)
        with consuming(database_url, tmp_path):
            await until("40 jobs", lambda: len(jobs_of(database_url, workflow["id"])) >= 40)
            await until("the queue drained", lambda: tenant.depths()[QUEUE] == 0)
            await asyncio.sleep(1.0)  # nothing more comes
            jobs = jobs_of(database_url, workflow["id"])
            health = await step_health(client, workflow)
    assert sorted(j["payload"]["order"] for j in jobs) == list(range(40))
    keys = {j["key"] for j in jobs}
    assert len(keys) == 40 and {f"amqp:order-{n}" for n in range(30)} <= keys
    assert sum(k.startswith("amqp:sha256:") for k in keys) == 10, sorted(keys)
    first = next(j for j in jobs if j["key"] == "amqp:order-0")
    assert first["trigger"]["queue"] == QUEUE and first["trigger"]["message_id"] == "order-0"
    assert first["trigger"]["content_type"] == "application/json"
    assert health["state"] == "connected" and health["started"] == 40, health
    assert tenant.depths()[DEAD_LETTER_QUEUE] == 0


async def test_a_message_that_is_not_json_is_rejected_to_the_dead_letter_exchange_and_kept(
        database_url: str, vhost: Vhost, tmp_path: Path) -> None:
    tenant = TenantQueue(vhost)
    await tenant.declare()
    bad = AmqpMessage(headers={}, body=b"<order>7</order>", content_type="text/xml",
                      message_id="xml-7")
    await tenant.publish([json_message({"order": 1}, "m1"), bad, json_message({"order": 2}, "m2")])
    async with control_plane(database_url) as client:
        workflow = await queue_workflow(client, vhost)
        with consuming(database_url, tmp_path):
            await until("the dead-letter exchange got it",
                        lambda: tenant.depths()[DEAD_LETTER_QUEUE] == 1)
            await until("two jobs", lambda: len(jobs_of(database_url, workflow["id"])) == 2)
            health = await step_health(client, workflow)
    step_id = workflow["steps"][0]["id"]
    with psycopg.connect(database_url) as conn:
        letters = conn.execute("SELECT consumer, event_id, reason, body, headers FROM dead_letters"
                               ).fetchall()
    assert len(letters) == 1
    consumer, event_id, reason, body, headers = letters[0]
    assert consumer == "Queue" and event_id == f"{step_id}:amqp:xml-7"
    assert "not JSON" in reason and body == "<order>7</order>"
    assert headers["stepline-step-id"] == step_id
    assert health["dead_letters"] == 1 and health["started"] == 2
    assert tenant.depths()[QUEUE] == 0


async def test_a_text_step_takes_any_body(database_url: str, vhost: Vhost,
                                          tmp_path: Path) -> None:
    tenant = TenantQueue(vhost)
    await tenant.declare()
    await tenant.publish([AmqpMessage(headers={}, body="olá, pedido 7".encode(),
                                      content_type="text/plain", message_id="t7")])
    async with control_plane(database_url) as client:
        workflow = await queue_workflow(client, vhost, format="text")
        with consuming(database_url, tmp_path):
            jobs = await until("a job", lambda: jobs_of(database_url, workflow["id"]))
    assert jobs[0]["payload"] == {"text": "olá, pedido 7"}


async def test_the_same_message_twice_starts_one_job(database_url: str, vhost: Vhost,
                                                     tmp_path: Path) -> None:
    tenant = TenantQueue(vhost)
    await tenant.declare()
    twice = [json_message({"order": 1}, "same-id"), json_message({"order": 1}, "same-id"),
             json_message({"no": "id"}), json_message({"no": "id"})]
    await tenant.publish(twice)
    async with control_plane(database_url) as client:
        workflow = await queue_workflow(client, vhost)
        with consuming(database_url, tmp_path):
            await until("the queue drained", lambda: tenant.depths()[QUEUE] == 0)
            await until("four answered", lambda: count(
                database_url, "SELECT started + duplicates FROM trigger_health") == 4)
            health = await step_health(client, workflow)
    assert len(jobs_of(database_url, workflow["id"])) == 2
    assert (health["started"], health["duplicates"]) == (2, 2)


async def test_connections_closed_mid_stream_lose_and_double_nothing(
        database_url: str, vhost: Vhost, tmp_path: Path) -> None:
    total = 300
    tenant = TenantQueue(vhost)
    await tenant.declare()
    await tenant.publish([json_message({"order": n}, f"o-{n}") for n in range(total)])
    async with control_plane(database_url) as client:
        workflow = await queue_workflow(client, vhost, prefetch=20)
        with consuming(database_url, tmp_path):
            closed = 0
            for _ in range(3):  # three times while the queue drains
                await until("some jobs", lambda: len(jobs_of(database_url, workflow["id"])) > 0)
                closed += tenant.close_connections()
                await asyncio.sleep(1.0)
            await until(f"{total} jobs",
                        lambda: len(jobs_of(database_url, workflow["id"])) >= total)
            await until("the queue drained", lambda: tenant.depths()[QUEUE] == 0)
            await asyncio.sleep(1.0)
            jobs = jobs_of(database_url, workflow["id"])
    assert closed >= 1
    assert len(jobs) == total
    assert sorted(j["payload"]["order"] for j in jobs) == list(range(total))
    assert tenant.depths()[DEAD_LETTER_QUEUE] == 0


@pytest.mark.parametrize("problem", ["password", "queue"])
async def test_a_source_it_cannot_consume_is_failing_in_its_health(
        database_url: str, vhost: Vhost, tmp_path: Path, problem: str) -> None:
    tenant = TenantQueue(vhost)
    await tenant.declare()
    async with control_plane(database_url) as client:
        body = amqp_connection(vhost, password="wrong" if problem == "password" else "guest")
        assert (await client.post("/v1/connections", json=body)).status_code == 201
        queue = "no-such-queue" if problem == "queue" else QUEUE
        workflow = await create_workflow(client, queue_steps(queue=queue), name="orders")
        with consuming(database_url, tmp_path):
            async def failing() -> dict[str, Any]:
                health = await step_health(client, workflow)
                return health if health["state"] == "failing" else {}
            deadline, health = time.monotonic() + WAIT_S, {}
            while not health and time.monotonic() < deadline:
                health = await failing()
                await asyncio.sleep(0.2)
    assert health, "the step never read as failing"
    assert health["since"] is not None
    expected = "ACCESS_REFUSED" if problem == "password" else "no-such-queue"
    assert expected in health["error"], health
    assert "no-such-queue" not in tenant.depths()  # checked passively, never declared


async def test_a_paused_workflow_leaves_its_messages_in_the_queue(
        database_url: str, vhost: Vhost, tmp_path: Path) -> None:
    tenant = TenantQueue(vhost)
    await tenant.declare()
    async with control_plane(database_url) as client:
        workflow = await queue_workflow(client, vhost)
        assert (await client.post(f"/v1/workflows/{workflow['id']}/pause")).status_code == 200
        await tenant.publish([json_message({"order": n}, f"p-{n}") for n in range(5)])
        with consuming(database_url, tmp_path):
            await asyncio.sleep(3.0)  # several refreshes of the consumers
            assert tenant.depths()[QUEUE] == 5
            assert jobs_of(database_url, workflow["id"]) == []
            assert (await step_health(client, workflow))["state"] == "idle"
            assert (await client.post(f"/v1/workflows/{workflow['id']}/resume")).status_code == 200
            await until("five jobs", lambda: len(jobs_of(database_url, workflow["id"])) == 5)
