"""The dead-letter queue's consumer: every message the transport gave up on (the adapter,
or the one-machine dispatcher, nacked it without requeue) is recorded as a dead letter,
its process failed and its job ended, and only then acknowledged. A message is never
acked before its record commits, so none is lost; recording twice changes nothing.

The function's own answer (a 500's body, say) does not travel with a nacked message: the
record says which queue gave the message up and how often, as RabbitMQ's ``x-death``
header tells; the function's log has the rest.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from psycopg_pool import AsyncConnectionPool

from stepline.db import connection
from stepline.errors import DatabaseUnavailable
from stepline.lifecycle import transport_gave_up, work
from stepline_relay.amqp import Broker, Consumer, Delivery
from stepline_relay.backoff import retrying
from stepline_relay.mapping import MappingError, from_amqp
from stepline_relay.topology import Topology
from stepline_relay.transport import TransportUnavailable

log = logging.getLogger(__name__)

ORIGIN = "dead-letter-queue"
PREFETCH = 50
RECONNECT_S = 1.0
DATABASE_BACKOFF_FIRST_S = 0.1
DATABASE_BACKOFF_MAX_S = 10.0


def describe(delivery: Delivery, consumer: str) -> str:
    death = delivery.deaths[0] if delivery.deaths else None
    if death is None:
        return f"the transport gave this message up (consumer {consumer!r})"
    times = "once" if death.count == 1 else f"{death.count} times"
    return (f"the transport gave this message up: {death.reason} by the consumer of queue "
            f"{death.queue!r} ({times}); the function answered with a status the transport "
            f"does not retry, or kept failing until the transport's retries ran out")


def contents(delivery: Delivery, queue: str) -> tuple[str, dict[str, Any], Any]:
    """The event id, attributes and data of a dead message, as well as they can be read."""
    try:
        event = from_amqp(delivery.message, queue=queue)
    except MappingError:
        body = delivery.message.body.decode("utf-8", "replace")
        event_id = delivery.message.headers.get("ce-id") or delivery.message.message_id or ""
        return event_id, dict(delivery.message.headers), body
    attributes = {k: str(v) for k, v in event.get_attributes().items()}
    data = event.get_data()
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            pass
    return event.get_id(), attributes, data


class DeadLetterRecorder:
    def __init__(self, *, broker: Broker, pool: AsyncConnectionPool, topology: Topology) -> None:
        self.broker, self.pool, self.topology = broker, pool, topology
        self.recorded = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with Consumer(self.broker, self.topology.dead_letter_queue,
                                    prefetch=PREFETCH) as consumer:
                    await self._drain(consumer, stop)
            except TransportUnavailable as exc:
                log.warning("dead-letter consumer: %s; consuming again in %.0fs",
                            exc, RECONNECT_S)
            if not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), RECONNECT_S)
                except TimeoutError:
                    pass

    async def _drain(self, consumer: Consumer, stop: asyncio.Event) -> None:
        while (delivery := await consumer.get(stop)) is not None:
            await self._record_until_done(delivery, stop)
            await consumer.ack(delivery)

    async def _record_until_done(self, delivery: Delivery, stop: asyncio.Event) -> None:
        try:
            async for attempt in retrying("dead-letter consumer", DatabaseUnavailable,
                                          first_s=DATABASE_BACKOFF_FIRST_S,
                                          max_s=DATABASE_BACKOFF_MAX_S, until=stop):
                with attempt:
                    await self.record(delivery)
        except DatabaseUnavailable as exc:  # only once stopping: the message stays unacked
            raise TransportUnavailable("stopping with a dead letter unrecorded") from exc

    async def record(self, delivery: Delivery) -> None:
        queue = delivery.deaths[0].queue if delivery.deaths else self.topology.dead_letter_queue
        consumer = self.topology.function_of(queue)
        event_id, attributes, data = contents(delivery, queue)
        reason = describe(delivery, consumer)
        async with connection(self.pool) as conn, work(conn) as unit:
            await transport_gave_up(unit, consumer=consumer, event_id=event_id or None,
                                    attributes=attributes, data=data, reason=reason,
                                    origin=ORIGIN)
        self.recorded += 1
        log.error("dead letter recorded for %s (event %s): %s", consumer, event_id, reason)
