"""The one module that talks to the AMQP client library (aiormq): a connection opened on
demand, the topology declared (or, for a user that may not declare, checked), confirmed
publishes, and manual-ack consumption.

Everything the broker or the network can throw is translated here, once, into
:class:`TransportUnavailable`; the rest of the relay never sees an aiormq type.

The URL (TLS included) goes to aiormq as it is; :mod:`stepline_relay.amqp_url` checks it
beforehand and is the only way it is ever shown, redacted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import aiormq
from aiormq.abc import AbstractChannel, AbstractConnection, DeliveredMessage
from pamqp.commands import Basic

from stepline_relay.amqp_url import redact, user_of, vhost_of
from stepline_relay.mapping import AmqpMessage, Death, deaths_of, header_text
from stepline_relay.topology import Topology, parse_version
from stepline_relay.transport import TransportUnavailable

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
PUBLISH_TIMEOUT_S = 30.0
PERSISTENT = 2
PRECONDITION_FAILED = 406
# what a broken connection, channel or socket raises in aiormq
_BROKEN = (aiormq.exceptions.AMQPError, aiormq.exceptions.ChannelInvalidStateError,
           ConnectionError, OSError, TimeoutError, RuntimeError)


@contextmanager
def translate_errors(what: str) -> Iterator[None]:
    try:
        yield
    except _BROKEN as exc:
        raise TransportUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc


class Broker:
    """One AMQP connection, opened on first use and again after it is lost."""

    def __init__(self, url: str, *, name: str, connect_timeout_s: float = CONNECT_TIMEOUT_S,
                 server_hostname: str | None = None):
        """``server_hostname``: the name TLS verifies when ``url`` names the address
        the platform's address guard resolved and checked (a tenant's broker)."""
        self.url, self.name, self.connect_timeout_s = url, name, connect_timeout_s
        self._options = {"server_hostname": server_hostname} if server_hostname else {}
        self._connection: AbstractConnection | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:  # never the password
        return f"Broker({redact(self.url)!r}, name={self.name!r})"

    @property
    def user(self) -> str:
        return user_of(self.url)

    @property
    def vhost(self) -> str:
        return vhost_of(self.url)

    async def connection(self) -> AbstractConnection:
        async with self._lock:
            if self._connection is None or self._connection.is_closed:
                with translate_errors("connecting to RabbitMQ"):
                    self._connection = await asyncio.wait_for(
                        aiormq.connect(self.url, client_properties={"connection_name": self.name},
                                       **self._options),
                        self.connect_timeout_s,
                    )
            return self._connection

    async def channel(self, *, confirms: bool) -> AbstractChannel:
        connection = await self.connection()
        with translate_errors("opening a channel"):
            return await connection.channel(publisher_confirms=confirms, on_return_raises=True)

    async def server_version(self) -> tuple[int, ...] | None:
        properties = (await self.connection()).server_properties or {}
        return parse_version(properties.get("version"))

    async def close(self) -> None:
        if self._connection is not None and not self._connection.is_closed:
            try:
                await self._connection.close()
            except _BROKEN:
                pass
        self._connection = None


async def declare(broker: Broker, topology: Topology) -> bool:
    """Declare the steps exchange, the dead-letter exchange and queue, and every function
    queue bound to the steps exchange by its name; idempotent. True once declared.

    A user that may not declare (no ``configure`` permission: a relay or a consumer run
    with least privilege) gets False instead, once :func:`check` found the topology in
    place: someone who may (``stepline-relay --declare-only``, or the Messaging Topology
    Operator) declares it. A queue that already exists with other arguments (say classic
    where quorum is asked for) is kept as it is, with a warning: RabbitMQ cannot change a
    queue's type."""
    try:
        await _declare(broker, topology)
        return True
    except TransportUnavailable as exc:
        if not isinstance(exc.__cause__, aiormq.exceptions.ChannelAccessRefused):
            raise
        refusal = exc.__cause__
    log.warning("RabbitMQ user %r may not declare Stepline's topology in vhost %r (%s); "
                "checking that it is there instead. Declare it once as a user that may "
                "configure it: stepline-relay --declare-only", broker.user, broker.vhost,
                refusal)
    await check(broker, topology)
    return False


async def _declare(broker: Broker, topology: Topology) -> None:
    channel = await broker.channel(confirms=False)
    with translate_errors("declaring the topology"):
        await channel.exchange_declare(topology.steps_exchange, exchange_type="direct",
                                       durable=True)
        await channel.exchange_declare(topology.dead_letter_exchange, exchange_type="fanout",
                                       durable=True)
    channel = await _declare_queue(broker, channel, topology.dead_letter_queue,
                                   topology.dead_letter_queue_arguments())
    with translate_errors("declaring the topology"):
        await channel.queue_bind(topology.dead_letter_queue, topology.dead_letter_exchange,
                                 routing_key="")
    for queue in topology.queues():
        channel = await _declare_queue(broker, channel, queue,
                                       topology.function_queue_arguments())
        with translate_errors(f"binding queue {queue!r}"):
            await channel.queue_bind(queue, topology.steps_exchange, routing_key=queue)
    with translate_errors("declaring the topology"):
        await channel.close()


async def check(broker: Broker, topology: Topology) -> None:
    """That every exchange and queue of ``topology`` exists (passive declarations, which
    need no permission), or :class:`TransportUnavailable` naming what is missing. Bindings
    cannot be checked this way: a missing one shows as returned (unroutable) messages."""
    channel = await broker.channel(confirms=False)
    exchanges = (topology.steps_exchange, topology.dead_letter_exchange)
    queues = (topology.dead_letter_queue, *topology.queues())
    for kind, name in (*(("exchange", e) for e in exchanges), *(("queue", q) for q in queues)):
        try:
            with translate_errors(f"checking {kind} {name!r}"):
                if kind == "exchange":
                    await channel.exchange_declare(name, passive=True)
                else:
                    await channel.queue_declare(name, passive=True)
        except TransportUnavailable as exc:
            if isinstance(exc.__cause__, aiormq.exceptions.ChannelNotFoundEntity):
                raise TransportUnavailable(
                    f"RabbitMQ has no {kind} {name!r} in vhost {broker.vhost!r}: the topology "
                    "is not declared; declare it as a user that may configure it "
                    "(stepline-relay --declare-only)") from exc
            raise
    with translate_errors("checking the topology"):
        await channel.close()


async def backlogs(broker: Broker, queues: Sequence[str]) -> dict[str, int]:
    """The messages ready in each queue (passive declarations: no permission needed); a
    queue that is not there is left out."""
    channel = await broker.channel(confirms=False)
    found: dict[str, int] = {}
    for queue in queues:
        try:
            with translate_errors(f"looking at queue {queue!r}"):
                found[queue] = (await channel.queue_declare(queue, passive=True)).message_count
        except TransportUnavailable as exc:
            if not isinstance(exc.__cause__, aiormq.exceptions.ChannelNotFoundEntity):
                raise
            channel = await broker.channel(confirms=False)  # the failed check closed it
    with translate_errors("looking at the queues"):
        await channel.close()
    return found


async def _declare_queue(broker: Broker, channel: AbstractChannel, queue: str,
                         arguments: dict) -> AbstractChannel:
    try:
        with translate_errors(f"declaring queue {queue!r}"):
            await channel.queue_declare(queue, durable=True, arguments=arguments)
        return channel
    except TransportUnavailable as exc:
        if not isinstance(exc.__cause__, aiormq.exceptions.ChannelPreconditionFailed):
            raise
    log.warning("queue %r exists with other arguments than %s; keeping it as it is",
                queue, arguments)
    channel = await broker.channel(confirms=False)  # the failed declare closed the last one
    with translate_errors(f"checking queue {queue!r}"):
        await channel.queue_declare(queue, passive=True)
    return channel


async def delete(broker: Broker, topology: Topology) -> None:
    """Remove what :func:`declare` made (tests and benchmarks clean up with this)."""
    channel = await broker.channel(confirms=False)
    with translate_errors("deleting the topology"):
        for queue in (*topology.queues(), topology.dead_letter_queue):
            await channel.queue_delete(queue)
        await channel.exchange_delete(topology.dead_letter_exchange)
        await channel.exchange_delete(topology.steps_exchange)
        await channel.close()


class Publisher:
    """Persistent, mandatory publishes on one confirm channel, all in flight at once, to
    ``exchange`` (the relay's is the topology's steps exchange; ``""``, RabbitMQ's default
    exchange, routes to the queue named by the routing key)."""

    def __init__(self, broker: Broker, *, exchange: str = "",
                 timeout_s: float = PUBLISH_TIMEOUT_S) -> None:
        self.broker, self.exchange, self.timeout_s = broker, exchange, timeout_s
        self._channel: AbstractChannel | None = None
        self._lock = asyncio.Lock()
        self.unroutable = 0  # returned messages seen: the topology may need declaring again

    async def channel(self) -> AbstractChannel:
        async with self._lock:
            if self._channel is None or self._channel.is_closed:
                self._channel = await self.broker.channel(confirms=True)
            return self._channel

    async def publish(self, messages: Sequence[tuple[str, AmqpMessage]]) -> list[str | None]:
        """Publish each (queue, message); for each, None once confirmed, or why not. One
        deadline for the whole batch (a timer per message costs more than it buys)."""
        if not messages:
            return []
        channel = await self.channel()
        tasks = [asyncio.ensure_future(self._publish_one(channel, queue, message))
                 for queue, message in messages]
        done, pending = await asyncio.wait(tasks, timeout=self.timeout_s)
        for task in pending:
            task.cancel()
        late = f"no confirm from RabbitMQ within {self.timeout_s:.0f}s"
        return [task.result() if task in done else late for task in tasks]

    async def _publish_one(self, channel: AbstractChannel, queue: str,
                           message: AmqpMessage) -> str | None:
        properties = Basic.Properties(
            headers=dict(message.headers), content_type=message.content_type,
            message_id=message.message_id, delivery_mode=PERSISTENT,
        )
        try:
            confirmation = await channel.basic_publish(
                message.body, exchange=self.exchange, routing_key=queue,
                properties=properties, mandatory=True,
            )
        except aiormq.exceptions.PublishError:
            self.unroutable += 1
            via = f"exchange {self.exchange!r}" if self.exchange else "the default exchange"
            return f"unroutable: RabbitMQ has no queue {queue!r} bound to {via}"
        except aiormq.exceptions.DeliveryError as exc:
            return f"RabbitMQ refused the message to {queue!r}: {exc.frame!r}"
        except _BROKEN as exc:
            return f"publishing to {queue!r}: {type(exc).__name__}: {exc}"
        if isinstance(confirmation, Basic.Ack):
            return None
        return f"publishing to {queue!r}: unexpected confirmation {confirmation!r}"

    async def close(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            try:
                await self._channel.close()
            except _BROKEN:
                pass


@dataclass(frozen=True)
class Delivery:
    """One consumed message, with what the consumer needs to settle it."""

    message: AmqpMessage
    tag: int
    redelivered: bool
    deaths: tuple[Death, ...] = field(default=())


class Consumer:
    """Consumes one queue on its own channel with manual acks and a prefetch. ``get``
    answers None for ever once the channel or the connection is gone: the caller opens
    a new consumer, and RabbitMQ redelivers whatever was not acked. ``closed`` is set
    then too."""

    def __init__(self, broker: Broker, queue: str, *, prefetch: int) -> None:
        self.broker, self.queue, self.prefetch = broker, queue, prefetch
        self._channel: AbstractChannel | None = None
        self._deliveries: asyncio.Queue[Delivery | None] = asyncio.Queue()
        self._watching: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    async def __aenter__(self) -> Consumer:
        self._channel = channel = await self.broker.channel(confirms=False)
        channel.closing.add_done_callback(self._on_close)
        self._watching = asyncio.create_task(self._watch())
        try:
            with translate_errors(f"consuming {self.queue!r}"):
                await channel.basic_qos(prefetch_count=self.prefetch)
                # the adapter's predeclared mode: the queue must exist, it is not made here
                await channel.queue_declare(self.queue, passive=True)
                await channel.basic_consume(self.queue, self._on_message, no_ack=False)
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._watching is not None:
            self._watching.cancel()
        if self._channel is not None and not self._channel.is_closed:
            try:
                await self._channel.close()
            except _BROKEN:
                pass

    def _on_close(self, _: asyncio.Future | None = None) -> None:
        if not self.closed.is_set():
            self.closed.set()
            self._deliveries.put_nowait(None)

    async def _watch(self, interval_s: float = 1.0) -> None:
        """Look at the channel and its connection every ``interval_s`` and close this
        consumer once either is gone: the close callback alone was seen to miss a
        connection closed by the broker."""
        while not self.closed.is_set():
            channel = self._channel
            if channel is None or channel.is_closed or channel.connection.is_closed:
                self._on_close()
                return
            try:
                await asyncio.wait_for(self.closed.wait(), interval_s)
            except TimeoutError:
                pass

    async def _on_message(self, message: DeliveredMessage) -> None:
        properties = message.header.properties
        raw = properties.headers or {}
        headers = {str(k): header_text(v) for k, v in raw.items() if not str(k).startswith("x-")}
        self._deliveries.put_nowait(Delivery(
            message=AmqpMessage(headers=headers, body=message.body,
                                content_type=properties.content_type,
                                message_id=properties.message_id),
            tag=message.delivery_tag or 0, redelivered=bool(message.redelivered),
            deaths=deaths_of(raw.get("x-death")),
        ))

    async def get(self, stop: asyncio.Event) -> Delivery | None:
        """The next delivery, or None once the channel is gone or ``stop`` is set."""
        if self.closed.is_set() or stop.is_set():
            return None
        getting = asyncio.ensure_future(self._deliveries.get())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({getting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not getting.done():
                getting.cancel()  # nothing taken: a cancelled Queue.get loses no item
        if not getting.done() or getting.cancelled():
            return None
        delivery = getting.result()
        if delivery is None:
            self._deliveries.put_nowait(None)  # every other waiter learns it too
        return delivery

    async def ack(self, delivery: Delivery) -> bool:
        return await self._settle(delivery, ack=True)

    async def reject(self, delivery: Delivery) -> bool:
        """Nack without requeue, as the adapter does: the queue's dead-letter exchange
        gets the message."""
        return await self._settle(delivery, ack=False)

    async def _settle(self, delivery: Delivery, *, ack: bool) -> bool:
        """False if the channel is gone: RabbitMQ will deliver the message again."""
        channel = self._channel
        if channel is None or channel.is_closed:
            return False
        try:
            if ack:
                await channel.basic_ack(delivery.tag)
            else:
                await channel.basic_nack(delivery.tag, requeue=False)
        except _BROKEN as exc:
            log.warning("could not settle a message of %r: %s", self.queue, exc)
            return False
        return True
