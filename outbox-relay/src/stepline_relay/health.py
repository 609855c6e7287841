"""The relay's probe and metrics endpoint (``--metrics-port``): ``/healthz`` answers 200
while the relay works and 503 saying why not; ``/metrics`` is Prometheus' text format.
``stepline-dispatch --metrics-port`` serves its own registry the same way.

The relay's counters are read from the relay at scrape time. What waits in the outbox
is read from the database at scrape time too (one indexed statement under a short
statement timeout), cached a few seconds so that frequent scrapes, from every replica,
cost nothing more; when it cannot be read its gauges are left out rather than shown as
zero, and the failure is counted."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import psycopg
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from psycopg_pool import AsyncConnectionPool

from stepline.db import fetch_one, translate_errors
from stepline.errors import DatabaseUnavailable
from stepline_relay.dead_letter_queue import DeadLetterRecorder
from stepline_relay.relay import Relay

log = logging.getLogger(__name__)

# an idle pump asks the database for the next due row every poll interval (5 s)
STALE_AFTER_S = 60.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BACKLOG_TTL_S = 5.0
SCRAPE_TIMEOUT_MS = 2000
SCRAPE_POOL_TIMEOUT_S = 2.0


class RelayCollector(Collector):
    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily("stepline_relay_rows_claimed",
                                  "Outbox rows claimed (leased) for delivery",
                                  value=self.relay.claimed)
        rows = CounterMetricFamily("stepline_relay_rows", "Outbox rows handled, by result",
                                   labels=["result"])
        rows.add_metric(["sent"], self.relay.delivered)
        rows.add_metric(["retried"], self.relay.retried)
        rows.add_metric(["dead"], self.relay.buried)
        yield rows
        yield from self.relay.publish_seconds.collect()


class DeadLetterCollector(Collector):
    def __init__(self, recorder: DeadLetterRecorder) -> None:
        self.recorder = recorder

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily("stepline_relay_dead_letters_recorded",
                                  "Messages from the dead-letter queue recorded",
                                  value=self.recorder.recorded)


@dataclass(frozen=True)
class BacklogReading:
    pending: float
    oldest_pending_age_s: float
    oldest_due_age_s: float


class OutboxBacklog(Collector):
    """The outbox's backlog gauges, read by :meth:`refresh` before each scrape."""

    def __init__(self, pool: AsyncConnectionPool, *, ttl_s: float = BACKLOG_TTL_S) -> None:
        self.pool, self.ttl_s = pool, ttl_s
        self.reading: BacklogReading | None = None
        self.taken_at = -ttl_s
        self.errors = 0

    async def refresh(self) -> None:
        if time.monotonic() - self.taken_at < self.ttl_s:
            return
        self.taken_at = time.monotonic()
        try:
            with translate_errors():
                async with self.pool.connection(timeout=SCRAPE_POOL_TIMEOUT_S) as conn:
                    async with conn.transaction():
                        await conn.execute(f"SET LOCAL statement_timeout = {SCRAPE_TIMEOUT_MS}")
                        self.reading = BacklogReading(**await fetch_one(conn, "outbox_backlog"))
        except (DatabaseUnavailable, psycopg.Error) as exc:  # a slow database fails no scrape
            log.warning("outbox backlog could not be read: %s", exc)
            self.errors += 1
            self.reading = None

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily("stepline_relay_metrics_database_errors",
                                  "Scrapes whose outbox figures could not be read",
                                  value=self.errors)
        if (reading := self.reading) is None:
            return
        yield GaugeMetricFamily("stepline_outbox_backlog", "Outbox rows waiting to be sent",
                                value=reading.pending)
        yield GaugeMetricFamily("stepline_outbox_oldest_pending_age_seconds",
                                "Age of the oldest outbox row waiting to be sent",
                                value=reading.oldest_pending_age_s)
        yield GaugeMetricFamily("stepline_outbox_oldest_due_age_seconds",
                                "How long the oldest outbox row already due has waited past "
                                "its time (0: none is late)", value=reading.oldest_due_age_s)


def relay_registry(relay: Relay, recorder: DeadLetterRecorder | None = None,
                   backlog: OutboxBacklog | None = None) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(RelayCollector(relay))
    if recorder is not None:
        registry.register(DeadLetterCollector(recorder))
    if backlog is not None:
        registry.register(backlog)
    return registry


Probe = Callable[[], str | None]


def metrics_app(registry: CollectorRegistry, *, probe: Probe | None = None,
                before_scrape: Callable[[], Awaitable[None]] | None = None) -> web.Application:
    """``/metrics`` from ``registry``; ``/healthz`` 200, or 503 with what ``probe`` says."""

    async def healthz(_: web.Request) -> web.Response:
        problem = probe() if probe is not None else None
        if problem is None:
            return web.json_response({"status": "ok"})
        return web.json_response({"status": "unavailable", "reason": problem}, status=503)

    async def metrics(_: web.Request) -> web.Response:
        if before_scrape is not None:
            await before_scrape()
        return web.Response(body=generate_latest(registry), headers={"content-type": CONTENT_TYPE})

    application = web.Application()
    application.router.add_get("/healthz", healthz)
    application.router.add_get("/metrics", metrics)
    return application


def app(relay: Relay, recorder: DeadLetterRecorder | None = None) -> web.Application:
    backlog = OutboxBacklog(relay.pool)
    return metrics_app(relay_registry(relay, recorder, backlog),
                       probe=lambda: relay.healthy(stale_after_s=STALE_AFTER_S),
                       before_scrape=backlog.refresh)


async def serve(application: web.Application, *, port: int) -> web.AppRunner:
    """Start serving on all interfaces (a probe comes from the kubelet); the caller
    cleans the returned runner up."""
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    return runner
