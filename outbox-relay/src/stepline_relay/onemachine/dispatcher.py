"""The one-machine stand-in for eventing-rabbitmq's RabbitmqSource adapter: it consumes
one function's queue and POSTs each message to the function's server as a binary-mode
CloudEvent, so the function code runs exactly as it does under Knative.

Each rule mirrors what the adapter does (``pkg/adapter/adapter.go``, ``pkg/rabbit/``,
and the CloudEvents Go SDK's HTTP sender it uses):

- **manual ack and a prefetch**: the adapter consumes with ``autoAck`` off and a channel
  QoS prefetch (100 in current releases); so does this (``prefetch``, default 100).
- **a parallelism setting**: the adapter hands deliveries to ``parallelism`` workers
  (``RABBITMQ_CHANNEL_PARALLELISM``, the source's ``parallelism``); so does this.
- **the queue is predeclared**: the adapter checks the queue passively and never
  declares it; so does the consumer here (the relay declares the topology).
- **the message becomes a CloudEvent as the adapter reads it**: ``ce-`` headers in
  binary mode, an ``application/cloudevents`` content type in structured mode, anything
  else wrapped in a new event (:mod:`stepline_relay.mapping`), then POSTed in binary
  mode.
- **ack on 2xx**: the adapter acks once the sender reports an ACK, i.e. a 2xx.
- **retry 404, 413, 425, 429, 502, 503, 504 and connection errors with exponential
  backoff**: the SDK's sender retries exactly those statuses and any error that carries
  no status, waiting ``backoff_delay * 2**n`` before retry ``n`` (its exponential
  strategy), ``retries`` times (the source's ``delivery.retry``,
  ``HTTP_SENDER_RETRY``; the delay is ``delivery.backoffDelay``).
- **otherwise reject without requeue**: any other status (a 500 included), retries
  exhausted, or a message that is no CloudEvent: the adapter nacks with ``requeue``
  false, so the queue's dead-letter exchange gets the message. A function that wants
  the transport to try again answers 503, never 500.
- **reconnect after a lost connection**: the adapter sleeps a second and consumes
  again; unacked messages come back from RabbitMQ (at-least-once delivery), which the
  functions' inbox makes harmless. A tenant's broker (a Queue step's source) is given
  a backoff instead (``reconnect_max_s``): a wrong password is not tried every second.

A :class:`Watcher` hears when the consumer is up and when it failed, and reads how many
messages are in hand (:attr:`Dispatcher.in_hand`): a Queue step's health.

Every POST is counted by status and timed, every retry and every settled message
counted (:class:`DispatchMetrics`, served by ``stepline-dispatch --metrics-port``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Histogram

from stepline_relay.amqp import Broker, Consumer, Delivery
from stepline_relay.mapping import HttpRequest, MappingError, from_amqp, to_http
from stepline_relay.transport import TransportUnavailable

log = logging.getLogger(__name__)

RETRIED_STATUSES = frozenset({404, 413, 425, 429, 502, 503, 504})
PREFETCH = 100
PARALLELISM = 10
RETRIES = 5
BACKOFF_DELAY_S = 0.5
REQUEST_TIMEOUT_S = 60.0
RECONNECT_S = 1.0
# up to the default request timeout
POST_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
NO_ANSWER = "error"  # the status label of a POST that got no answer (connection, timeout)


@dataclass(frozen=True)
class DispatchOptions:
    prefetch: int = PREFETCH
    parallelism: int = PARALLELISM
    retries: int = RETRIES
    backoff_delay_s: float = BACKOFF_DELAY_S
    request_timeout_s: float = REQUEST_TIMEOUT_S
    # the wait before consuming again doubles from RECONNECT_S up to this after failures
    reconnect_max_s: float = RECONNECT_S


class Watcher(Protocol):
    """Told how a dispatcher's consumer is (a Queue step's health)."""

    async def consuming(self, dispatcher: Dispatcher) -> None: ...

    async def failed(self, dispatcher: Dispatcher, error: str) -> None: ...


@dataclass(frozen=True)
class Verdict:
    ack: bool
    reason: str = ""


class DispatchMetrics:
    """The metrics of a dispatcher process, shared by its dispatchers (one per queue)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "stepline_dispatcher_requests", "CloudEvents POSTed to functions, by function "
            "and HTTP status (error: no answer)", ["function", "status"], registry=self.registry)
        self.request_seconds = Histogram(
            "stepline_dispatcher_request_duration_seconds", "Time a function took to answer "
            "a POST", ["function"], buckets=POST_BUCKETS_S, registry=self.registry)
        self.retries = Counter(
            "stepline_dispatcher_retries", "POSTs repeated after a status the adapter "
            "retries or no answer", ["function"], registry=self.registry)
        self.messages = Counter(
            "stepline_dispatcher_messages", "Messages settled, by function and result (acked; "
            "rejected: to the dead-letter exchange)", ["function", "result"],
            registry=self.registry)


def retry_delay_s(options: DispatchOptions, retry: int) -> float:
    """The wait before retry ``retry`` (1-based): the SDK's exponential backoff."""
    return options.backoff_delay_s * 2 ** retry


def reconnect_delay_s(options: DispatchOptions, failures: int) -> float:
    """The wait before consuming again after ``failures`` failed rounds in a row."""
    return min(options.reconnect_max_s, RECONNECT_S * 2 ** max(failures - 1, 0))


class Dispatcher:
    """Feeds one queue to one function URL until ``stop`` is set."""

    def __init__(self, *, broker: Broker, queue: str, url: str, session: aiohttp.ClientSession,
                 options: DispatchOptions | None = None, function: str | None = None,
                 metrics: DispatchMetrics | None = None, watcher: Watcher | None = None
                 ) -> None:
        self.broker, self.queue, self.url, self.session = broker, queue, url, session
        self.options = options or DispatchOptions()
        self.acked = self.rejected = self.in_hand = 0
        self.function = function or queue
        self.metrics = metrics or DispatchMetrics()
        self.watcher = watcher

    async def run(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                async with Consumer(self.broker, self.queue,
                                    prefetch=self.options.prefetch) as consumer:
                    log.info("dispatching %s to %s", self.queue, self.url)
                    failures = 0
                    if self.watcher is not None:
                        await self.watcher.consuming(self)
                    await self._work(consumer, stop)
                error = "the broker closed the channel or the connection"
            except TransportUnavailable as exc:
                error = str(exc)
            if stop.is_set():
                return
            failures += 1
            delay = reconnect_delay_s(self.options, failures)
            log.warning("dispatcher of %s: %s; consuming again in %.1fs", self.queue, error,
                        delay)
            if self.watcher is not None:
                await self.watcher.failed(self, error)
            await _sleep_unless(stop, delay)

    async def _work(self, consumer: Consumer, stop: asyncio.Event) -> None:
        workers = [asyncio.create_task(self._worker(consumer, stop))
                   for _ in range(self.options.parallelism)]
        # A lost channel ends the round at once: a worker still waiting on its function
        # (up to the request timeout) could not ack on it anyway, and RabbitMQ delivers
        # its message again on the next channel, where the function's inbox sees it.
        watching = asyncio.create_task(consumer.closed.wait())
        all_done = asyncio.gather(*workers)
        try:
            await asyncio.wait({all_done, watching}, return_when=asyncio.FIRST_COMPLETED)
            if all_done.done():
                all_done.result()
        finally:
            watching.cancel()
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, watching, return_exceptions=True)

    async def _worker(self, consumer: Consumer, stop: asyncio.Event) -> None:
        while (delivery := await consumer.get(stop)) is not None:
            # a message in hand is finished even if stop comes meanwhile
            await asyncio.shield(self._settle(consumer, delivery))

    async def _settle(self, consumer: Consumer, delivery: Delivery) -> None:
        self.in_hand += 1  # consumed and not settled yet: unacked
        try:
            await self._answer(consumer, delivery)
        finally:
            self.in_hand -= 1

    async def _answer(self, consumer: Consumer, delivery: Delivery) -> None:
        verdict = await self.handle(delivery)
        if verdict.ack:
            settled = await consumer.ack(delivery)
            self.acked += settled  # added after the await: concurrent workers lose no count
        else:
            log.error("dispatcher of %s rejects message %s: %s", self.queue,
                      delivery.message.message_id, verdict.reason)
            settled = await consumer.reject(delivery)
            self.rejected += settled
        if settled:
            self.metrics.messages.labels(self.function,
                                         "acked" if verdict.ack else "rejected").inc()

    async def handle(self, delivery: Delivery) -> Verdict:
        try:
            request = to_http(from_amqp(delivery.message, queue=self.queue))
        except MappingError as exc:
            return Verdict(ack=False, reason=str(exc))
        reason = ""
        for retry in range(self.options.retries + 1):
            if retry:
                self.metrics.retries.labels(self.function).inc()
                await asyncio.sleep(retry_delay_s(self.options, retry))
            try:
                status, text = await self._post(request)
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.metrics.requests.labels(self.function, NO_ANSWER).inc()
                reason = f"POST {self.url}: {type(exc).__name__}: {exc}"
                continue
            self.metrics.requests.labels(self.function, str(status)).inc()
            if 200 <= status < 300:
                return Verdict(ack=True)
            reason = f"POST {self.url} answered {status}: {text[:300]}"
            if status not in RETRIED_STATUSES:
                return Verdict(ack=False, reason=reason)
        return Verdict(ack=False, reason=f"gave up after {self.options.retries} retries: {reason}")

    async def _post(self, request: HttpRequest) -> tuple[int, str]:
        timeout = aiohttp.ClientTimeout(total=self.options.request_timeout_s)
        started = time.monotonic()
        try:
            async with self.session.post(self.url, headers=dict(request.headers),
                                         data=request.body, timeout=timeout) as response:
                return response.status, await response.text(errors="replace")
        finally:
            self.metrics.request_seconds.labels(self.function).observe(
                time.monotonic() - started)


def http_session(options: DispatchOptions) -> aiohttp.ClientSession:
    """A session for one function, as many connections as the parallelism (call it in
    the event loop that will use it)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=options.parallelism))


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass
