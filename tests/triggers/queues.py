"""Helpers of the Queue trigger's tests: a tenant's queue (with its dead-letter exchange)
in a vhost of the test's own, messages published to it, the platform's processes that
consume it (the Queue function and the one-machine stand-in for the RabbitmqSources),
and the broker's connections of that vhost closed as a fault — never anyone else's."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from rabbitmq.broker import AMQP_URL, Vhost, rabbitmqctl

from stepline_control.onemachine.children import (
    Child,
    function_child,
    function_folders,
    queue_sources_child,
    url_of,
)
from stepline_relay.amqp import Broker
from stepline_relay.mapping import AmqpMessage
from support import child_env

from .amqp_publisher import publish

QUEUE = "orders"
DEAD_LETTER_EXCHANGE = "orders.dlx"
DEAD_LETTER_QUEUE = "orders.dead"
# quick enough for a test to see a change, the consumer's state reported often
SOURCE_ARGS = ["--refresh-s", "0.5", "--heartbeat-s", "1"]


def amqp_connection(vhost: Vhost, *, password: str = "guest", name: str = "broker"
                    ) -> dict[str, Any]:
    return {"name": name, "kind": "amqp",
            "config": {"host": "127.0.0.1", "port": 5672, "vhost": vhost.name},
            "secret": {"user": "guest", "password": password}}


def queue_steps(*, connection: str = "broker", queue: str = QUEUE, **config: Any
                ) -> list[dict[str, Any]]:
    """One Queue step whose job ends the moment it starts: a job per message, counted."""
    return [{"key": "in", "function": "Queue", "output": None,
             "config": {"connection": connection, "queue": queue, **config}}]


@dataclass
class TenantQueue:
    """The tenant's side: a queue with a dead-letter exchange, declared by the tenant."""

    vhost: Vhost

    async def declare(self, queue: str = QUEUE, *, dead_letters: bool = True) -> None:
        broker = Broker(self.vhost.url, name="tenant")
        try:
            channel = await broker.channel(confirms=False)
            arguments = {}
            if dead_letters:
                await channel.exchange_declare(DEAD_LETTER_EXCHANGE, exchange_type="fanout")
                await channel.queue_declare(DEAD_LETTER_QUEUE, durable=True)
                await channel.queue_bind(DEAD_LETTER_QUEUE, DEAD_LETTER_EXCHANGE, routing_key="")
                arguments = {"x-dead-letter-exchange": DEAD_LETTER_EXCHANGE}
            await channel.queue_declare(queue, durable=True, arguments=arguments)
        finally:
            await broker.close()

    async def publish(self, messages: list[AmqpMessage], queue: str = QUEUE) -> None:
        """Each message exactly as given (none gets a message_id it was not given)."""
        await asyncio.to_thread(publish, self.vhost.url, queue, messages)

    def depths(self) -> dict[str, int]:
        return self.vhost.queue_depths()

    def close_connections(self) -> int:
        """Close every connection to this vhost (the consumers'), one by one by pid:
        other tests' connections to the same broker are left alone."""
        out = rabbitmqctl("list_connections", "vhost", "pid")
        pids = [line.split()[-1] for line in out.splitlines()
                if line.split() and line.split()[0] == self.vhost.name]
        for pid in pids:
            rabbitmqctl("close_connection", pid, "closed by a Queue trigger fault test")
        return len(pids)


def json_message(body: Any, message_id: str | None = None, **headers: str) -> AmqpMessage:
    return AmqpMessage(headers=headers, body=json.dumps(body).encode(),
                       content_type="application/json", message_id=message_id)


@contextmanager
def consuming(database_url: str, log_dir: Path) -> Iterator[tuple[Child, Child]]:
    """The Queue function's server and the platform's consumer of every Queue step."""
    env = child_env(database_url)
    function = function_child("Queue", function_folders()["Queue"], env=env, log_dir=log_dir)
    function.start().wait_ready()
    sources = queue_sources_child(url_of(function), env=env, log_dir=log_dir,
                                  args=SOURCE_ARGS)
    try:
        yield function, sources.start()
    finally:
        sources.stop()
        function.stop()


def jobs_of(database_url: str, workflow_id: str) -> list[dict[str, Any]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT idempotency_key, payload, trigger_data FROM jobs WHERE workflow_id = %s",
            (workflow_id,)).fetchall()
    return [{"key": k, "payload": p, "trigger": t} for k, p, t in rows]


def broker_is_local() -> bool:
    return AMQP_URL.startswith("amqp://guest:guest@127.0.0.1")
