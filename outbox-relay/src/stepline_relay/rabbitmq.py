"""The relay's production transport: each outbox row published to its function's queue
as a persistent, mandatory, binary-mode CloudEvent, and reported sent only once RabbitMQ
has confirmed it. A whole batch is in flight at once (one confirm per message, not one
round trip per message).

A row that cannot be mapped to a CloudEvent is dead at once (it never will be); a nack,
a returned (unroutable) message or a broken connection is a retry. When the broker
cannot be reached at all, :meth:`ready` says so before any row is claimed, so an outage
spends no row's attempts. A returned message means a queue is missing: the topology is
declared again before the next batch.

Messages go to the topology's steps exchange, routed by queue name. The relay declares
the topology itself unless told not to (``declare=False``: a relay whose RabbitMQ user may
only write to that exchange); then, and when RabbitMQ refuses it the declaration, it
checks that the topology is there and waits, claiming nothing, until it is.

A queue that already holds :data:`QUEUE_DEPTH_MAX` ready messages takes no more for a
moment (:meth:`RabbitmqTransport.full_destinations`): its rows wait in the outbox, where
the relay's fair claim decides what goes next, instead of in the queue, where they would
go first come first served. So one account's fan-out of a million items leaves at most
that many (and what the consumers prefetched) ahead of another account's next step.

A function registered from outside the repository has a queue of its own (its
endpoint): the relay learns it from the first row that goes there and declares it with
the rest at the next round (that first row comes back unroutable and is retried). A
relay that may not declare leaves it to the Messaging Topology Operator's objects, as
for the built-in queues.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

from stepline_relay.amqp import Broker, Publisher, backlogs, check, declare
from stepline_relay.mapping import MappingError, to_amqp
from stepline_relay.topology import Topology, resolve_queue_type
from stepline_relay.transport import Dead, Result, Retry, Row, Sent

log = logging.getLogger(__name__)

QUEUE_DEPTH_MAX = 256
BACKLOG_TTL_S = 0.05  # how long a look at the queues' depths holds, for every pump


class RabbitmqTransport:
    def __init__(self, *, broker: Broker, functions: tuple[str, ...], queue_type: str = "auto",
                 prefix: str = "", declare: bool = True,
                 backlog_max: int | None = QUEUE_DEPTH_MAX) -> None:
        self.broker = broker
        self.backlog_max = backlog_max  # None: no queue is ever full (a bench's drain)
        self._functions, self._queue_type, self._prefix = functions, queue_type, prefix
        self.declares = declare
        exchange = Topology(functions=functions, prefix=prefix).steps_exchange
        self.publisher = Publisher(broker, exchange=exchange)
        self.topology: Topology | None = None
        self._declared_for: object = None  # the connection the topology was declared on
        self._unroutable_seen = 0
        self._declaring = asyncio.Lock()
        self._full: tuple[float, set[str]] = (0.0, set())
        self._looking = asyncio.Lock()

    async def ready(self) -> None:
        connection = await self.broker.connection()
        if self._declared_for is connection and self.publisher.unroutable == self._unroutable_seen:
            return
        async with self._declaring:  # one pump declares, the others wait for it
            await self._declare()

    async def _declare(self) -> None:
        connection = await self.broker.connection()
        if self._declared_for is connection and self.publisher.unroutable == self._unroutable_seen:
            return
        unroutable = self.publisher.unroutable
        if self.topology is None:
            queue_type = resolve_queue_type(self._queue_type, await self.broker.server_version())
            self.topology = Topology(functions=self._functions, queue_type=queue_type,
                                     prefix=self._prefix)
        if self.declares and await declare(self.broker, self.topology):
            log.info("RabbitMQ topology declared: %d %s queues bound to %s, and %s",
                     len(self._functions), self.topology.queue_type,
                     self.topology.steps_exchange, self.topology.dead_letter_queue)
        else:
            if self.declares:
                self.declares = False  # refused once: checking will do from now on
            else:
                await check(self.broker, self.topology)
            log.info("RabbitMQ topology checked, not declared (user %r): %d queues and %s",
                     self.broker.user, len(self._functions), self.topology.dead_letter_queue)
        self._declared_for, self._unroutable_seen = connection, unroutable

    async def full_destinations(self) -> set[str]:
        """The functions whose queue holds ``backlog_max`` (:data:`QUEUE_DEPTH_MAX`) ready
        messages or more, looked at once per :data:`BACKLOG_TTL_S` whichever pump asks."""
        async with self._looking:
            at, full = self._full
            if (time.monotonic() - at < BACKLOG_TTL_S or self.topology is None
                    or self.backlog_max is None):
                return full
            queues = {self.topology.queue(name): name for name in self._functions}
            depths = await backlogs(self.broker, list(queues))
            full = {queues[q] for q, depth in depths.items() if depth >= self.backlog_max}
            self._full = (time.monotonic(), full)
            return full

    async def deliver(self, rows: list[Row]) -> list[Result]:
        assert self.topology is not None, "ready() first"
        results: list[Result | None] = [None] * len(rows)
        outgoing, positions = [], []
        self._learn(rows)
        for i, row in enumerate(rows):
            if row.url:
                results[i] = Dead(row, f"function {row.destination!r} is registered with a URL "
                                  f"({row.url}): through RabbitMQ its endpoint must be a queue")
                continue
            try:
                outgoing.append((self.topology.queue(row.target),
                                 to_amqp(row.attributes, row.data)))
                positions.append(i)
            except MappingError as exc:
                results[i] = Dead(row, str(exc))
        errors = await self.publisher.publish(outgoing)
        for i, error in zip(positions, errors, strict=True):
            results[i] = Sent(rows[i]) if error is None else Retry(rows[i], error)
        return [r for r in results if r is not None]

    def _learn(self, rows: list[Row]) -> None:
        """Queues of registered functions not declared yet join the topology, declared
        before the next batch. A relay that only checks the topology leaves them out: a
        queue missing there is that function's problem (its rows come back unroutable
        until they are dead), not every function's."""
        assert self.topology is not None
        new = {row.target for row in rows if not row.url} - set(self._functions)
        if new and self.declares:
            self._functions = tuple(sorted({*self._functions, *new}))
            self.topology = replace(self.topology, functions=self._functions)
            self._declared_for = None

    async def close(self) -> None:
        await self.publisher.close()
        await self.broker.close()
