"""The AMQP adapter, the relay's transport, the dispatcher's rules and the dead-letter
consumer, each against this machine's RabbitMQ (a queue-name prefix of each test's own
in a shared vhost) and, where they write, PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest

from stepline.db import create_pool
from stepline.packet import EVENT_TYPE
from stepline_relay import rabbitmq as rabbitmq_module
from stepline_relay import relay as relay_module
from stepline_relay.amqp import (
    Broker,
    Consumer,
    Delivery,
    Publisher,
    backlogs,
    declare,
    delete,
)
from stepline_relay.dead_letter_queue import DeadLetterRecorder
from stepline_relay.mapping import AmqpMessage, to_amqp
from stepline_relay.onemachine.dispatcher import (
    Dispatcher,
    DispatchOptions,
    http_session,
    retry_delay_s,
)
from stepline_relay.rabbitmq import RabbitmqTransport
from stepline_relay.relay import NOTIFY_CHANNEL, Relay, RelayOptions
from stepline_relay.topology import Topology
from stepline_relay.transport import TransportUnavailable

from .broker import Vhost, rabbitmqctl
from .sink import sink

FUNCTIONS = ("Transform", "Database.query")
QUICK = DispatchOptions(parallelism=4, prefetch=10, retries=2, backoff_delay_s=0.01,
                        request_timeout_s=5)


def event(**extra: str) -> tuple[dict[str, str], dict]:
    attributes = {"specversion": "1.0", "id": str(uuid.uuid4()), "type": EVENT_TYPE,
                  "source": "/stepline/test", "datacontenttype": "application/json", **extra}
    return attributes, {"payload": {"n": 1}}


@pytest.fixture
async def topology(shared_vhost: Vhost, prefix: str) -> AsyncIterator[Topology]:
    made = Topology(functions=FUNCTIONS, prefix=prefix)
    broker = Broker(shared_vhost.url, name="test topology")
    await declare(broker, made)
    yield made
    await delete(broker, made)
    await broker.close()


@pytest.fixture
async def broker(shared_vhost: Vhost) -> AsyncIterator[Broker]:
    opened = Broker(shared_vhost.url, name="test")
    yield opened
    await opened.close()


async def next_delivery(consumer: Consumer, timeout_s: float = 10.0) -> Delivery:
    delivery = await asyncio.wait_for(consumer.get(asyncio.Event()), timeout_s)
    assert delivery is not None
    return delivery


async def test_declaring_twice_changes_nothing_and_queues_dead_letter(
    broker: Broker, topology: Topology, shared_vhost: Vhost
) -> None:
    await declare(broker, topology)  # the fixture declared it once already
    listed = rabbitmqctl("list_queues", "-p", shared_vhost.name, "name", "durable", "arguments")
    ours = {line.split()[0]: line for line in listed.splitlines()
            if line.startswith(topology.prefix)}
    assert set(ours) == {*topology.queues(), topology.dead_letter_queue}
    for queue in topology.queues():
        assert "true" in ours[queue] and topology.dead_letter_exchange in ours[queue]


async def test_a_quorum_topology_over_classic_queues_keeps_them(
    broker: Broker, topology: Topology, shared_vhost: Vhost
) -> None:
    quorum = Topology(functions=topology.functions, prefix=topology.prefix, queue_type="quorum")
    await declare(broker, quorum)  # RabbitMQ cannot change a queue's type: kept, no failure
    fresh = Topology(functions=("Condition",), prefix=topology.prefix + "q.",
                     queue_type="quorum")
    await declare(broker, fresh)
    try:
        listed = rabbitmqctl("list_queues", "-p", shared_vhost.name, "name", "type")
        types = dict(line.split() for line in listed.splitlines() if line.strip())
        assert types[topology.queue("Transform")] == "classic"
        assert types[fresh.queue("Condition")] == "quorum"
        assert types[fresh.dead_letter_queue] == "quorum"
    finally:
        await delete(broker, fresh)


async def test_published_messages_are_persistent_confirmed_and_come_back_whole(
    broker: Broker, topology: Topology
) -> None:
    publisher = Publisher(broker)
    attributes, data = event(jobid="j1")
    message = to_amqp(attributes, data)
    assert await publisher.publish([(topology.queue("Transform"), message)]) == [None]
    async with Consumer(broker, topology.queue("Transform"), prefetch=1) as consumer:
        delivery = await next_delivery(consumer)
        assert delivery.message.headers == message.headers
        assert delivery.message.message_id == attributes["id"]
        assert json.loads(delivery.message.body) == data
        assert await consumer.ack(delivery)


async def test_an_unroutable_message_is_a_failure(broker: Broker, topology: Topology) -> None:
    publisher = Publisher(broker)
    [error] = await publisher.publish([(topology.prefix + "NoSuch.function",
                                        to_amqp(*event()))])
    assert error is not None and "unroutable" in error
    assert publisher.unroutable == 1


async def test_a_rejected_message_reaches_the_dead_letter_queue(
    broker: Broker, topology: Topology
) -> None:
    await Publisher(broker).publish([(topology.queue("Transform"), to_amqp(*event()))])
    async with Consumer(broker, topology.queue("Transform"), prefetch=1) as consumer:
        assert await consumer.reject(await next_delivery(consumer))
    async with Consumer(broker, topology.dead_letter_queue, prefetch=1) as consumer:
        dead = await next_delivery(consumer)
        assert dead.deaths[0].queue == topology.queue("Transform")
        assert dead.deaths[0].reason == "rejected"
        await consumer.ack(dead)


async def run_dispatcher(broker: Broker, topology: Topology, url: str, messages: int,
                         options: DispatchOptions = QUICK) -> Dispatcher:
    """Dispatch the Transform queue to ``url`` until ``messages`` were settled."""
    async with http_session(options) as session:
        dispatcher = Dispatcher(broker=broker, queue=topology.queue("Transform"), url=url,
                                session=session, options=options)
        stop = asyncio.Event()
        task = asyncio.create_task(dispatcher.run(stop))
        try:
            for _ in range(500):
                if dispatcher.acked + dispatcher.rejected >= messages:
                    break
                await asyncio.sleep(0.02)
        finally:
            stop.set()
            await task
    return dispatcher


async def dead_letters(broker: Broker, topology: Topology) -> list[Delivery]:
    found = []
    async with Consumer(broker, topology.dead_letter_queue, prefetch=10) as consumer:
        while True:
            try:
                delivery = await asyncio.wait_for(consumer.get(asyncio.Event()), 0.5)
            except TimeoutError:
                return found
            assert delivery is not None
            found.append(delivery)
            await consumer.ack(delivery)


async def test_the_dispatcher_acks_2xx_retries_what_the_adapter_retries_and_rejects_the_rest(
    broker: Broker, topology: Topology
) -> None:
    ok, flaky, broken, missing, plain = (event() for _ in range(5))
    script = {flaky[0]["id"]: [503, 429], broken[0]["id"]: [500],
              missing[0]["id"]: [404, 404, 404]}
    messages = [to_amqp(*e) for e in (ok, flaky, broken, missing)]
    messages.append(AmqpMessage(headers={}, body=b"not a cloudevent", content_type="text/plain",
                                message_id=plain[0]["id"]))
    await Publisher(broker).publish([(topology.queue("Transform"), m) for m in messages])
    with sink(script) as function:
        dispatcher = await run_dispatcher(broker, topology, function.url, len(messages))
    assert (dispatcher.acked, dispatcher.rejected) == (3, 2)
    assert function.calls(ok[0]["id"]) == 1
    assert function.calls(flaky[0]["id"]) == 3  # 503, 429, then 200
    assert function.calls(broken[0]["id"]) == 1  # a 500 is never retried
    assert function.calls(missing[0]["id"]) == 1 + QUICK.retries  # then given up
    # a message that is no CloudEvent is wrapped and delivered, as the adapter does
    assert function.calls(plain[0]["id"]) == 1
    headers, body = next(r for r in function.requests if r[0].get("ce-id") == ok[0]["id"])
    assert headers["content-type"] == "application/json" and json.loads(body) == ok[1]
    rejected = {d.message.headers["ce-id"] for d in await dead_letters(broker, topology)}
    assert rejected == {broken[0]["id"], missing[0]["id"]}


async def test_the_dispatcher_retries_a_function_that_is_not_listening(
    broker: Broker, topology: Topology
) -> None:
    await Publisher(broker).publish([(topology.queue("Transform"), to_amqp(*event()))])
    dispatcher = await run_dispatcher(broker, topology, "http://127.0.0.1:9/", 1)
    assert (dispatcher.acked, dispatcher.rejected) == (0, 1)
    [dead] = await dead_letters(broker, topology)
    assert dead.deaths[0].queue == topology.queue("Transform")


def test_the_backoff_is_the_sdk_s_exponential_one() -> None:
    options = DispatchOptions(backoff_delay_s=0.2)
    assert [retry_delay_s(options, n) for n in (1, 2, 3)] == [0.4, 0.8, 1.6]


async def insert_outbox_row(database_url: str, attributes: dict, data: dict,
                            destination: str = "Transform") -> int:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cur = await conn.execute(
            "INSERT INTO outbox (event_id, destination, attributes, data) "
            "VALUES (%s, %s, %s, %s) RETURNING id",
            (attributes["id"], destination, json.dumps(attributes), json.dumps(data)))
        return (await cur.fetchone())[0]


async def test_the_relay_publishes_rows_and_buries_a_row_that_is_no_cloudevent(
    broker: Broker, topology: Topology, database_url: str
) -> None:
    good = await insert_outbox_row(database_url, *event())
    bad = await insert_outbox_row(database_url, *event(**{"job_id": "not alphanumeric"}))
    transport = RabbitmqTransport(broker=broker, functions=FUNCTIONS, queue_type="classic",
                                  prefix=topology.prefix)
    pool = create_pool(database_url)
    await pool.open()
    try:
        relay = Relay(database_url=database_url, pool=pool, transport=transport)
        await transport.ready()
        assert await relay.pump_once() == 2
    finally:
        await pool.close()
    with psycopg.connect(database_url) as conn:
        status = dict(conn.execute("SELECT id, status FROM outbox").fetchall())
        reason = conn.execute("SELECT origin, reason FROM dead_letters").fetchone()
    assert status == {good: "sent", bad: "dead"}
    assert reason[0] == "relay" and "job_id" in reason[1]
    async with Consumer(broker, topology.queue("Transform"), prefetch=1) as consumer:
        await consumer.ack(await next_delivery(consumer))


async def test_a_full_queue_holds_rows_in_the_outbox_without_spinning_the_relay(
    broker: Broker, topology: Topology, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a queue at its backlog cap takes no more: its rows wait in the outbox (where the fair
    # claim orders them), and the pumps, finding them due but unclaimable, wait for a
    # while instead of claiming again at once (they once spun at 100% of a core each)
    monkeypatch.setattr(relay_module, "BLOCKED_WAIT_S", 30.0)
    monkeypatch.setattr(rabbitmq_module, "BACKLOG_TTL_S", 0.0)  # every claim looks
    ids = {(await insert_outbox_row(database_url, *event())) for _ in range(40)}
    transport = RabbitmqTransport(broker=broker, functions=FUNCTIONS, queue_type="classic",
                                  prefix=topology.prefix, backlog_max=5)
    pool = create_pool(database_url)
    await pool.open()
    relay = Relay(database_url=database_url, pool=pool, transport=transport,
                  options=RelayOptions(pumps=2, batch_size=4))
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    queue = topology.queue("Transform")

    def pending() -> int:
        with psycopg.connect(database_url) as conn:
            return conn.execute("SELECT count(*) FROM outbox WHERE status = 'pending'"
                                ).fetchone()[0]

    try:
        for _ in range(500):
            if (await backlogs(broker, [queue]))[queue] >= 5:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)  # the pumps find the queue full and go to sleep
        claims = relay.claims
        await asyncio.sleep(1.0)
        assert relay.claims - claims <= 2  # at most one more claim a pump, not hundreds
        held = pending()
        # the queue got at most what the two pumps claimed while it held less than 5
        assert held >= 40 - 4 - 2 * 4
        assert (await backlogs(broker, [queue]))[queue] == 40 - held
        # consumed, the queue takes the rest: each row once
        monkeypatch.setattr(relay_module, "BLOCKED_WAIT_S", 0.05)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f"NOTIFY {NOTIFY_CHANNEL}")
        seen = []
        async with Consumer(broker, queue, prefetch=10) as consumer:
            while len(seen) < 40:
                delivery = await next_delivery(consumer)
                seen.append(delivery.message.message_id)
                await consumer.ack(delivery)
        assert len(set(seen)) == 40 and pending() == 0
    finally:
        stop.set()
        await task
        await pool.close()
    assert len(ids) == 40


async def test_a_broker_out_of_reach_claims_nothing(database_url: str) -> None:
    row = await insert_outbox_row(database_url, *event())
    transport = RabbitmqTransport(
        broker=Broker("amqp://guest:guest@127.0.0.1:9/", name="nowhere", connect_timeout_s=2),
        functions=FUNCTIONS)
    pool = create_pool(database_url)
    await pool.open()
    try:
        relay = Relay(database_url=database_url, pool=pool, transport=transport,
                      options=RelayOptions())
        with pytest.raises(TransportUnavailable):
            await relay.pump_once()
    finally:
        await pool.close()
    with psycopg.connect(database_url) as conn:
        attempts, status = conn.execute("SELECT attempts, status FROM outbox WHERE id = %s",
                                        (row,)).fetchone()
    assert (attempts, status) == (0, "pending")


async def test_what_reaches_the_dead_letter_queue_is_recorded_once_and_fails_its_process(
    broker: Broker, topology: Topology, database_url: str
) -> None:
    from support import control_plane, create_workflow

    async with control_plane(database_url) as client:
        workflow = await create_workflow(client, [
            {"key": "start", "function": "Manual", "output": "single", "next": "shape"},
            {"key": "shape", "function": "Transform", "config": {"expression": "@"},
             "output": None}])
        job_id = (await client.post(f"/v1/workflows/{workflow['id']}/jobs",
                                    json={"payload": {"n": 1}})).json()["id"]
    with psycopg.connect(database_url) as conn:
        attributes, data, process_id = conn.execute(
            "SELECT attributes, data, process_id FROM outbox WHERE job_id = %s",
            (job_id,)).fetchone()
    message = to_amqp(attributes, data)
    publisher = Publisher(broker)
    for _ in range(2):  # the same message given up twice: one record
        await publisher.publish([(topology.queue("Transform"), message)])
        async with Consumer(broker, topology.queue("Transform"), prefetch=1) as consumer:
            await consumer.reject(await next_delivery(consumer))
    pool = create_pool(database_url)
    await pool.open()
    recorder = DeadLetterRecorder(broker=broker, pool=pool, topology=topology)
    stop = asyncio.Event()
    task = asyncio.create_task(recorder.run(stop))
    try:
        for _ in range(250):
            if recorder.recorded == 2:
                break
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await task
        await pool.close()
    with psycopg.connect(database_url) as conn:
        letters = conn.execute(
            "SELECT consumer, event_id, origin, process_id FROM dead_letters").fetchall()
        process = conn.execute("SELECT status, error FROM processes WHERE id = %s",
                               (process_id,)).fetchone()
        job = conn.execute("SELECT status FROM jobs WHERE id = %s", (job_id,)).fetchone()[0]
    assert letters == [("Transform", attributes["id"], "dead-letter-queue", process_id)]
    assert process[0] == "failed" and process[1]["type"] == "transport"
    assert "rejected" in process[1]["message"]
    assert job == "failed"
    assert await dead_letters(broker, topology) == []  # acked once recorded


async def test_the_relay_serves_its_probe_and_its_counters(
    broker: Broker, topology: Topology, database_url: str
) -> None:
    import aiohttp

    from stepline_control.onemachine.children import free_port
    from stepline_relay import health

    await insert_outbox_row(database_url, *event())
    transport = RabbitmqTransport(broker=broker, functions=FUNCTIONS, queue_type="classic",
                                  prefix=topology.prefix)
    pool = create_pool(database_url)
    await pool.open()
    relay = Relay(database_url=database_url, pool=pool, transport=transport)
    port = free_port()
    runner = await health.serve(health.app(relay), port=port)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(250):
                async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status == 200 and relay.delivered == 1:
                        break
                await asyncio.sleep(0.02)
            assert response.status == 200
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                text = await response.text()
            assert 'stepline_relay_rows_total{result="sent"} 1.0' in text
            stop.set()
            await task
            async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 503
                assert "not running" in (await response.json())["reason"]
    finally:
        stop.set()
        await task
        await runner.cleanup()
        await pool.close()
    async with Consumer(broker, topology.queue("Transform"), prefetch=1) as consumer:
        await consumer.ack(await next_delivery(consumer))
