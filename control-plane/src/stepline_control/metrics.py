"""Prometheus metrics of the control plane, one registry per application.

Counters and a histogram count what this process does (requests, starts, refusals,
cancels, retries, jobs found stuck). What the whole platform is doing (jobs and
processes by status, the outbox backlog and its oldest pending row, the jobs stuck now,
the trigger steps by health and how long each failing one has failed) is read from the
database at scrape time, under a short statement timeout, and cached for a few seconds
so that frequent scrapes cost nothing more."""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stepline.lifecycle import Health, triggers
from stepline_control.sessions import driver_connection

log = logging.getLogger(__name__)

SCRAPE_TIMEOUT_MS = 2000

# One statement: every figure from indexes or tables that retention keeps small.
PLATFORM_SQL = text("""
SELECT 'job' AS kind, NULL AS function, status, count(*)::float8 AS value
  FROM jobs GROUP BY status
UNION ALL
SELECT 'process', function, status, count(*) FROM processes GROUP BY function, status
UNION ALL
SELECT 'outbox_backlog', NULL, NULL, count(*) FROM outbox WHERE status = 'pending'
UNION ALL
SELECT 'outbox_oldest', NULL, NULL,
       coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
  FROM outbox WHERE status = 'pending'
UNION ALL
SELECT 'stuck', NULL, NULL, count(*) FROM jobs
 WHERE stuck_since IS NOT NULL AND status = 'running'
""")


@dataclass
class PlatformSnapshot:
    jobs: dict[str, float] = field(default_factory=dict)
    processes: dict[tuple[str, str], float] = field(default_factory=dict)
    outbox_backlog: float = 0.0
    outbox_oldest_age_s: float = 0.0
    stuck_jobs: float = 0.0
    # trigger steps by (function, state), and the failing ones with how long they fail
    triggers: dict[tuple[str, str], float] = field(default_factory=dict)
    failing: list[tuple[Health, float]] = field(default_factory=list)
    taken_at: float = 0.0
    ok: bool = False


class Metrics:
    def __init__(self, *, ttl_s: float) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.ttl_s = ttl_s
        self.snapshot = PlatformSnapshot()
        self.requests = Counter(
            "stepline_http_requests", "HTTP requests answered by the control plane",
            ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram(
            "stepline_http_request_duration_seconds", "Time to answer an HTTP request",
            ["method", "route"], registry=self.registry)
        self.jobs_started = Counter(
            "stepline_jobs_started", "Jobs started through the control plane",
            ["trigger"], registry=self.registry)
        self.starts_refused = Counter(
            "stepline_job_starts_refused", "Starts refused: account or workflow blocked, "
            "quota reached", ["reason"], registry=self.registry)
        self.jobs_cancelled = Counter(
            "stepline_jobs_cancelled", "Jobs cancelled through the API", registry=self.registry)
        self.processes_retried = Counter(
            "stepline_processes_retried", "Failed processes retried through the API",
            registry=self.registry)
        self.jobs_stuck_detected = Counter(
            "stepline_jobs_stuck_detected", "Jobs found stuck by the watchdog (each time a "
            "job gets stuck, counted once across control planes)", registry=self.registry)
        self.scrape_errors = Counter(
            "stepline_metrics_database_errors", "Scrapes whose database figures failed",
            registry=self.registry)
        self.registry.register(_PlatformCollector(self))

    async def refresh(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        if time.monotonic() - self.snapshot.taken_at < self.ttl_s:
            return
        try:
            self.snapshot = await read_platform(sessions)
        except Exception:  # a slow or lost database must not break the scrape
            log.warning("platform metrics could not be read", exc_info=True)
            self.scrape_errors.inc()
            self.snapshot = PlatformSnapshot(taken_at=time.monotonic())

    def render(self) -> bytes:
        return generate_latest(self.registry)


async def read_platform(sessions: async_sessionmaker[AsyncSession]) -> PlatformSnapshot:
    snapshot = PlatformSnapshot(taken_at=time.monotonic(), ok=True)
    async with sessions() as session, session.begin():
        await session.execute(text(f"SET LOCAL statement_timeout = {SCRAPE_TIMEOUT_MS}"))
        for kind, function, status, value in await session.execute(PLATFORM_SQL):
            if kind == "job":
                snapshot.jobs[status] = value
            elif kind == "process":
                snapshot.processes[(function, status)] = value
            elif kind == "stuck":
                snapshot.stuck_jobs = value
            elif kind == "outbox_backlog":
                snapshot.outbox_backlog = value
            else:
                snapshot.outbox_oldest_age_s = value
        await read_triggers(session, snapshot)
    return snapshot


async def read_triggers(session: AsyncSession, snapshot: PlatformSnapshot) -> None:
    now = datetime.now(UTC)
    found = await triggers.health(await driver_connection(session), now=now)
    snapshot.triggers = dict(Tally((h.function, h.state) for h in found.values()))
    snapshot.failing = [(h, (now - h.since).total_seconds() if h.since else 0.0)
                        for h in found.values() if h.state == "failing"]


class _PlatformCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snap = self.metrics.snapshot
        jobs = GaugeMetricFamily("stepline_jobs", "Jobs in the database by status "
                                 "(finished ones until retention prunes them)", labels=["status"])
        for status, value in sorted(snap.jobs.items()):
            jobs.add_metric([status], value)
        yield jobs
        processes = GaugeMetricFamily("stepline_processes", "Processes in the database by "
                                      "function and status", labels=["function", "status"])
        for (function, status), value in sorted(snap.processes.items()):
            processes.add_metric([function, status], value)
        yield processes
        yield GaugeMetricFamily("stepline_outbox_backlog", "Outbox rows waiting to be sent",
                                value=snap.outbox_backlog)
        yield GaugeMetricFamily("stepline_outbox_oldest_pending_age_seconds",
                                "Age of the oldest outbox row waiting to be sent",
                                value=snap.outbox_oldest_age_s)
        yield GaugeMetricFamily("stepline_jobs_stuck", "Running jobs with outstanding work "
                                "and no progress for longer than the watchdog's bound",
                                value=snap.stuck_jobs)
        yield from _trigger_families(snap)


def _trigger_families(snap: PlatformSnapshot) -> Iterator[GaugeMetricFamily]:
    counts = GaugeMetricFamily("stepline_triggers", "Trigger steps with a source of their "
                               "own (Queue, Email, Sms) by function and health state",
                               labels=["function", "state"])
    for (function, state), value in sorted(snap.triggers.items()):
        counts.add_metric([function, state], value)
    yield counts
    # one series per failing step only: the few an operator must look at, by name
    failing = GaugeMetricFamily("stepline_trigger_failing_seconds", "How long each failing "
                                "trigger step has failed (its consumer or poller cannot "
                                "reach its source, or stopped reporting)",
                                labels=["function", "step_id", "workflow_id"])
    for health, seconds in sorted(snap.failing, key=lambda f: str(f[0].step_id)):
        failing.add_metric([health.function, str(health.step_id), str(health.workflow_id)],
                           seconds)
    yield failing
