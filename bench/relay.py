"""The relay's own figures through RabbitMQ: rows/s draining a backlog of outbox rows
(the real ``Relay`` and ``RabbitmqTransport``, in this process), and the latency from
one row's commit, the relay idle, to its message reaching a consumer (it must wake on
NOTIFY, not poll)."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiormq
import psycopg

from bench.raw import Rate
from stepline.db import create_pool, execute, jsonb, q
from stepline.messages import outbox_row
from stepline.packet import Packet, ProcessRef, Ref, StepRef, WorkflowRef
from stepline_relay.amqp import Broker, Publisher, declare
from stepline_relay.mapping import AmqpMessage
from stepline_relay.onemachine.dispatcher import Dispatcher, DispatchOptions, http_session
from stepline_relay.rabbitmq import RabbitmqTransport
from stepline_relay.relay import Relay, RelayOptions, soft_commit_conninfo
from stepline_relay.topology import Topology

INSERT_CHUNK = 5000
FUNCTION = "Transform"
DISPATCHED = "dispatch"


def sample_row(i: int, *, destination: str = FUNCTION) -> dict[str, Any]:
    """An outbox row as a fan-out writes it: one item of a list as the payload."""
    packet = Packet(
        payload={"id": i, "name": f"item {i}", "email": f"lead{i}@example.com"},
        account=Ref(id=uuid.uuid4()), job=Ref(id=uuid.uuid4()),
        workflow=WorkflowRef(id=uuid.uuid4(), version=1),
        step=StepRef(id=uuid.uuid4(), key="save"), process=ProcessRef(id=uuid.uuid4()),
    )
    return outbox_row(packet, destination=destination)


def insert_rows(database_url: str, rows: list[dict[str, Any]]) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        for start in range(0, len(rows), INSERT_CHUNK):
            conn.execute(q("outbox_insert"), {"rows": jsonb(rows[start:start + INSERT_CHUNK])})


@dataclass
class RunningRelay:
    relay: Relay
    stop: asyncio.Event
    task: asyncio.Task

    async def halt(self) -> None:
        self.stop.set()
        await self.task
        await self.relay.transport.close()
        await self.relay.pool.close()


async def start_relay(database_url: str, amqp_url: str, prefix: str, options: RelayOptions,
                      *, started: list[float] | None = None) -> RunningRelay:
    """The relay with its pool open and its queues declared, then running; the moment it
    starts running is appended to ``started``."""
    pool = create_pool(soft_commit_conninfo(database_url), max_size=options.pumps + 2)
    await pool.open()
    transport = RabbitmqTransport(broker=Broker(amqp_url, name="bench relay"),
                                  functions=(FUNCTION,), queue_type="classic", prefix=prefix,
                                  # nothing consumes while the relay drains, as in the raw
                                  # publish it is compared with: no backlog cap
                                  backlog_max=None)
    await transport.ready()
    relay = Relay(database_url=database_url, pool=pool, transport=transport, options=options)
    stop = asyncio.Event()
    if started is not None:
        started.append(time.perf_counter())
    return RunningRelay(relay, stop, asyncio.create_task(relay.run(stop)))


async def drain_rate(database_url: str, amqp_url: str, prefix: str, count: int,
                     options: RelayOptions) -> tuple[Rate, RunningRelay]:
    """Rows/s for a backlog of ``count`` rows, from the relay's start (its pool open and
    its queues declared) to the last confirm recorded as sent. The relay is left running
    (idle) for the latency run."""
    insert_rows(database_url, [sample_row(i) for i in range(count)])
    started: list[float] = []
    running = await start_relay(database_url, amqp_url, prefix, options, started=started)
    while running.relay.delivered < count:  # noqa: ASYNC110 (a counter, polled cheaply)
        await asyncio.sleep(0.005)
    return Rate(count, time.perf_counter() - started[0]), running


async def idle_to_delivered_ms(database_url: str, amqp_url: str, queue: str,
                               samples: int, idle_s: float) -> tuple[list[float], list[float]]:
    """For each sample: insert and commit one row while the relay is idle, and time from
    the commit (when the row exists and its NOTIFY goes) until a consumer of its queue
    has the message. The writer's own INSERT + COMMIT times come second."""
    arrived: dict[str, float] = {}
    waiting: dict[str, asyncio.Event] = {}
    connection = await aiormq.connect(amqp_url)
    channel = await connection.channel()

    async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
        event_id = message.header.properties.message_id or ""
        arrived[event_id] = time.perf_counter()
        if event_id in waiting:
            waiting[event_id].set()
        await channel.basic_ack(message.delivery_tag)

    await channel.basic_consume(queue, on_message)
    latencies, commits = [], []
    try:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            for i in range(samples):
                await asyncio.sleep(idle_s)  # the relay's pumps are asleep again
                row = sample_row(i)
                waiting[row["event_id"]] = event = asyncio.Event()
                started = time.perf_counter()
                await execute(conn, "outbox_insert", rows=jsonb([row]))
                committed = time.perf_counter()
                await asyncio.wait_for(event.wait(), 10)
                latencies.append((arrived[row["event_id"]] - committed) * 1000)
                commits.append((committed - started) * 1000)
    finally:
        await connection.close()
    return latencies, commits


async def dispatch_rate(amqp_url: str, prefix: str, message: AmqpMessage, url: str,
                        count: int, options: DispatchOptions) -> Rate:
    """Messages/s from a queue to a function through the dispatcher: consume, POST the
    binary CloudEvent, ack on 2xx."""
    broker = Broker(amqp_url, name="bench dispatch")
    publisher = Publisher(broker)
    topology = Topology(functions=(DISPATCHED,), prefix=prefix)
    await declare(broker, topology)
    queue = topology.queue(DISPATCHED)
    for start in range(0, count, 1000):
        await publisher.publish([(queue, message)] * min(1000, count - start))
    async with http_session(options) as session:
        dispatcher = Dispatcher(broker=broker, queue=queue, url=url, session=session,
                                options=options)
        stop = asyncio.Event()
        started = time.perf_counter()
        task = asyncio.create_task(dispatcher.run(stop))
        while dispatcher.acked + dispatcher.rejected < count:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        seconds = time.perf_counter() - started
        stop.set()
        await task
    await broker.close()
    return Rate(dispatcher.acked, seconds)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def summary_ms(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "p95": percentile(values, 0.95),
            "min": min(values), "max": max(values)}
