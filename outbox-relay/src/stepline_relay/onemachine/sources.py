"""``stepline-queue-sources``: on one machine, what the RabbitmqSource the reconciler keeps
per Queue step does in a cluster — consume the step's queue on the tenant's broker (its
``amqp`` connection) and POST each message to the Queue function at ``/{step_id}`` —
with the very dispatcher that stands in for the adapter on the platform's own queues
(:mod:`stepline_relay.onemachine.dispatcher`): manual acks, the step's ``prefetch``, the
queue checked passively and never declared, ack on 2xx, reject otherwise.

Level-triggered like the reconciler: every ``refresh_s`` the Queue steps to consume are
read again (``stepline.queue_sources``) and the consumers made to match — a new step
gets one, a changed one is restarted, a paused, blocked or deleted one is stopped (its
messages wait in the queue). The broker's host goes through the platform's address
guard, and the connection is made to the address it checked. A broker that cannot be
reached, a wrong password or a missing queue is tried again with a backoff, and each
consumer's state — connected with the messages in hand, or failing with the error and
since when — is reported through ``stepline.lifecycle.triggers`` at once and every
``heartbeat_s``: a consumer that dies stops reporting, and its step reads as failing."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from psycopg_pool import AsyncConnectionPool

from stepline.db import connection, create_pool
from stepline.errors import SteplineError
from stepline.lifecycle import triggers
from stepline.net import Network, check_url
from stepline.queue_sources import QueueSource, queue_sources
from stepline.secrets import SecretBox
from stepline.settings import Settings
from stepline_relay.amqp import Broker
from stepline_relay.amqp_url import url_for
from stepline_relay.cli import configure_logging, stop_on_signals
from stepline_relay.onemachine.dispatcher import (
    Dispatcher,
    DispatchMetrics,
    DispatchOptions,
    http_session,
)

log = logging.getLogger(__name__)

QUEUE_FUNCTION = "Queue"
REFRESH_S = 5.0
HEARTBEAT_S = 15.0
RECONNECT_MAX_S = 30.0
POOL_MAX_SIZE = 4


@dataclass(frozen=True)
class Plan:
    start: list[QueueSource]
    stop: list[uuid.UUID]


def plan(desired: Mapping[uuid.UUID, QueueSource], running: Mapping[uuid.UUID, QueueSource]
         ) -> Plan:
    """What to start and stop so that the consumers match ``desired``: a source that
    changed (its queue, prefetch or broker) is stopped and started again."""
    changed = [step for step, source in desired.items()
               if step in running and running[step] != source]
    return Plan(start=[s for step, s in desired.items() if step not in running or step in changed],
                stop=[step for step in running if step not in desired or step in changed])


class Health:
    """A consumer's state, reported when it changes and every heartbeat."""

    def __init__(self, pool: AsyncConnectionPool, step_id: uuid.UUID) -> None:
        self.pool, self.step_id = pool, step_id
        self.state: triggers.State = "idle"
        self.error: str | None = None
        self.dispatcher: Dispatcher | None = None

    async def consuming(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        if self.state != "connected":
            log.info("Queue step %s: consuming", self.step_id)
        await self.set("connected")

    async def failed(self, dispatcher: Dispatcher | None, error: str) -> None:
        if self.state != "failing" or error != self.error:
            log.warning("Queue step %s: failing: %s", self.step_id, error)
        await self.set("failing", error)

    async def set(self, state: triggers.State, error: str | None = None) -> None:
        self.state, self.error = state, error
        await self.send()

    async def send(self) -> None:
        unacked = self.dispatcher.in_hand if self.dispatcher and self.state == "connected" else None
        try:
            async with connection(self.pool) as conn:
                await triggers.report(conn, self.step_id, self.state, error=self.error,
                                      unacked=unacked)
        except SteplineError as exc:  # the database away: the next heartbeat tries again
            log.warning("Queue step %s: health not recorded: %s", self.step_id, exc)


@dataclass
class Consumer:
    source: QueueSource
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class QueueSources:
    """The consumers of every Queue step to consume, kept to match the database."""

    def __init__(self, *, pool: AsyncConnectionPool, box: SecretBox, queue_url: str,
                 allowed: Sequence[Network], refresh_s: float = REFRESH_S,
                 heartbeat_s: float = HEARTBEAT_S, reconnect_max_s: float = RECONNECT_MAX_S,
                 metrics: DispatchMetrics | None = None) -> None:
        self.pool, self.box, self.allowed = pool, box, allowed
        self.queue_url = queue_url.rstrip("/")
        self.refresh_s, self.heartbeat_s = refresh_s, heartbeat_s
        self.reconnect_max_s = reconnect_max_s
        self.metrics = metrics or DispatchMetrics()
        self.consumers: dict[uuid.UUID, Consumer] = {}

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    await self.refresh()
                except SteplineError as exc:  # the database away: keep what runs
                    log.warning("Queue steps not read: %s; trying again", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.refresh_s)
        finally:
            await self.stop_all()

    async def refresh(self) -> None:
        async with connection(self.pool) as conn:
            desired = {s.step_id: s for s in await queue_sources(conn, self.box)}
        todo = plan(desired, {step: c.source for step, c in self.consumers.items()})
        for step_id in todo.stop:
            await self._stop(step_id)
        for source in todo.start:
            consumer = self.consumers[source.step_id] = Consumer(source)
            consumer.task = asyncio.create_task(self._consume(consumer),
                                                name=f"stepline-queue-{source.step_id}")

    async def _stop(self, step_id: uuid.UUID) -> None:
        consumer = self.consumers.pop(step_id)
        consumer.stop.set()
        if consumer.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await consumer.task

    async def stop_all(self) -> None:
        for step_id in list(self.consumers):
            await self._stop(step_id)

    async def _consume(self, consumer: Consumer) -> None:
        source, health = consumer.source, Health(self.pool, consumer.source.step_id)
        beat = asyncio.create_task(self._heartbeat(health, consumer.stop))
        try:
            await self._consume_until_stopped(source, health, consumer.stop)
        except Exception:  # one step's consumer must not end the others
            log.exception("Queue step %s: consumer failed", source.step_id)
            await health.failed(None, "the platform's consumer of this queue failed")
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat

    async def _consume_until_stopped(self, source: QueueSource, health: Health,
                                     stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                broker = await self._broker(source)
            except SteplineError as exc:  # no broker, or the address guard refused it
                failures += 1
                await health.failed(None, str(exc))
                await _wait(stop, min(self.reconnect_max_s, 2.0 ** failures))
                continue
            await self._dispatch(source, broker, health, stop)

    async def _broker(self, source: QueueSource) -> Broker:
        if source.broker is None:
            raise SteplineError(source.problem or "no broker")
        b = source.broker
        host = f"[{b.host}]" if ":" in b.host else b.host
        address = await check_url(f"http://{host}:{b.port}/", self.allowed)
        url = url_for(host=address, port=b.port, vhost=b.vhost, tls=b.tls, user=b.user,
                      password=b.password)
        return Broker(url, name=f"stepline-queue {source.step_id}",
                      server_hostname=b.host if b.tls else None)

    async def _dispatch(self, source: QueueSource, broker: Broker, health: Health,
                        stop: asyncio.Event) -> None:
        options = DispatchOptions(prefetch=source.prefetch, parallelism=source.prefetch,
                                  reconnect_max_s=self.reconnect_max_s)
        session = http_session(options)
        try:
            await Dispatcher(broker=broker, queue=source.queue, session=session,
                             url=f"{self.queue_url}/{source.step_id}", options=options,
                             function=QUEUE_FUNCTION, metrics=self.metrics,
                             watcher=health).run(stop)
        finally:
            await broker.close()
            await session.close()

    async def _heartbeat(self, health: Health, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await _wait(stop, self.heartbeat_s)
            if not stop.is_set() and health.state != "idle":
                await health.send()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def serve(settings: Settings, *, queue_url: str, refresh_s: float = REFRESH_S,
                heartbeat_s: float = HEARTBEAT_S) -> None:
    pool = create_pool(settings.require_database_url(), max_size=POOL_MAX_SIZE)
    await pool.open(wait=False)
    try:
        sources = QueueSources(pool=pool, box=SecretBox(settings.secret_key),
                               queue_url=queue_url, allowed=settings.allowed_networks,
                               refresh_s=refresh_s, heartbeat_s=heartbeat_s)
        await sources.run(stop_on_signals())
    finally:
        await pool.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="stepline-queue-sources", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queue-url", default=None,
                        help="the Queue function's URL (default: STEPLINE_FUNCTION_URLS)")
    parser.add_argument("--refresh-s", type=float, default=REFRESH_S,
                        help="how often the Queue steps are read again")
    parser.add_argument("--heartbeat-s", type=float, default=HEARTBEAT_S,
                        help="how often each consumer reports its state")
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging(settings)
    queue_url = args.queue_url or settings.function_urls.get(QUEUE_FUNCTION)
    if not queue_url:
        parser.error("no --queue-url and no Queue in STEPLINE_FUNCTION_URLS")
    asyncio.run(serve(settings, queue_url=queue_url, refresh_s=args.refresh_s,
                      heartbeat_s=args.heartbeat_s))


if __name__ == "__main__":
    main()
