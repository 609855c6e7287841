"""The relay loop: claim a leased batch, hand it to the transport, record each result.

Several pumps run side by side in one relay (and several relays side by side): each
claim takes rows no one else holds (``SKIP LOCKED``) and leases them, so a relay killed
mid-batch only delays its rows until the lease runs out; the inbox on the consuming side
makes the redelivery harmless. A pump sleeps until a wake-up (a NOTIFY from an outbox
insert, handed to one pump; or another pump's full batch), the next scheduled row
coming due, or a fallback poll, whichever is first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass

import psycopg
from prometheus_client import Histogram
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from stepline.db import connection, execute, fetch_one, jsonb, q, translate_errors
from stepline.errors import DatabaseUnavailable
from stepline.lifecycle import transport_gave_up, work
from stepline_relay.backoff import retrying, started_over
from stepline_relay.transport import (
    Dead,
    Result,
    Retry,
    Row,
    Sent,
    Transport,
    TransportUnavailable,
)

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "stepline_outbox"
BATCH_SIZE = 256
# what one batch holds and one row may carry (compressed, as stored): a few huge rows
# must not fill the relay's memory, nor one row too large to publish stop its pump
BATCH_MAX_BYTES = 32 * 1024 * 1024
ROW_MAX_BYTES = 64 * 1024 * 1024
PUMPS = 4
LEASE_S = 120.0
POLL_INTERVAL_S = 5.0
# rows are due but the last claim could take none of them (their queue is full, or
# another relay's claim holds them): look again after this, or at the next NOTIFY
BLOCKED_WAIT_S = 0.05
RETRY_BASE_S = 0.5
RETRY_MAX_S = 30.0
MAX_ATTEMPTS = 20
RECONNECT_FIRST_S = 0.1
RECONNECT_MAX_S = 10.0
RECORD_ATTEMPTS = 5
# a batch over HTTP (one machine) waits on the functions themselves: up to their timeout
PUBLISH_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class RelayOptions:
    batch_size: int = BATCH_SIZE
    pumps: int = PUMPS
    lease_s: float = LEASE_S
    poll_interval_s: float = POLL_INTERVAL_S
    max_attempts: int = MAX_ATTEMPTS
    batch_max_bytes: int = BATCH_MAX_BYTES
    row_max_bytes: int = ROW_MAX_BYTES


# The relay's own writes (claims, and rows marked sent, retried or dead) commit without
# waiting for the WAL flush. Losing the last of them in a PostgreSQL crash is harmless: a
# lost claim or mark only sends a row again, which consumers de-duplicate, and a row's
# burial and its dead letter are one transaction, lost together or kept together. What
# must survive an acknowledgement (the dead-letter consumer's records) uses another pool.
SOFT_COMMIT = "-c synchronous_commit=off"


def soft_commit_conninfo(database_url: str) -> str:
    """``database_url`` with the relay's session option added to any it has."""
    options = conninfo_to_dict(database_url).get("options")
    return make_conninfo(database_url, options=f"{options or ''} {SOFT_COMMIT}".strip())


def relay_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class JsonText(str):
    """A jsonb value as the JSON text PostgreSQL sent (a CloudEvent's data, passed on
    as the message body unchanged)."""


class JsonTextLoader(Loader):
    def load(self, data: Buffer) -> JsonText:
        return JsonText(bytes(data).decode("utf-8"))


class Wakeups:
    """Wake-ups (NOTIFYs, a full batch) coalesced into one token, taken by one sleeping
    pump at a time: a NOTIFY wakes one pump, not all of them, and a NOTIFY that comes
    while every pump is busy waits for the next one to sleep, so none is lost."""

    def __init__(self) -> None:
        self._token: asyncio.Queue[None] = asyncio.Queue(maxsize=1)

    def post(self) -> None:
        if self._token.empty():
            self._token.put_nowait(None)

    async def wait(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self._token.get(), timeout_s)
        except TimeoutError:
            pass


def retry_delay_s(attempts: int) -> float:
    return min(RETRY_BASE_S * 2 ** max(attempts - 1, 0), RETRY_MAX_S)


class Relay:
    def __init__(
        self,
        *,
        database_url: str,
        pool: AsyncConnectionPool,
        transport: Transport,
        options: RelayOptions | None = None,
        name: str | None = None,
    ) -> None:
        self.database_url = database_url
        self.pool = pool
        self.transport = transport
        self.options = options or RelayOptions()
        self.name = name or relay_name()
        self._wake = Wakeups()
        self._tasks: list[asyncio.Task] = []
        self.claimed = self.delivered = self.retried = self.buried = 0
        self.claims = 0  # claim statements run, rows or none
        # exported by stepline_relay.health, with the counts above
        self.publish_seconds = Histogram(
            "stepline_relay_publish_duration_seconds",
            "Time from claiming a batch of outbox rows to the transport's answer for all of "
            "them (RabbitMQ: the publisher confirms)", buckets=PUBLISH_BUCKETS_S, registry=None)
        self.last_round_trip = 0.0  # monotonic time a pump last heard from the database

    async def run(self, stop: asyncio.Event) -> None:
        self._tasks = tasks = [asyncio.create_task(self._listen(stop), name="relay-listen")]
        tasks += [
            asyncio.create_task(self._pump(stop), name=f"relay-pump-{i}")
            for i in range(self.options.pumps)
        ]
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def pump_once(self, conn: psycopg.AsyncConnection | None = None) -> int:
        """Claim one batch, deliver it, record the results; the number of rows claimed."""
        if conn is None:
            async with connection(self.pool) as own:
                return await self.pump_once(own)
        await self.transport.ready()  # a broker outage claims nothing, spends no attempt
        started = time.monotonic()
        rows = await self._claim(conn)
        if not rows:
            return 0
        self.claimed += len(rows)
        too_large = [Dead(row, f"{row.size} bytes of data: more than a message may carry "
                               f"({self.options.row_max_bytes})")
                     for row in rows if row.data is None]
        rows = [row for row in rows if row.data is not None]
        try:
            results = await self.transport.deliver(rows) if rows else []
        except TransportUnavailable as exc:
            await self._record_persistently(
                [*too_large, *(Retry(row, str(exc)) for row in rows)], conn)
            raise
        self.publish_seconds.observe(time.monotonic() - started)
        await self._record_persistently([*too_large, *results], conn)
        return len(rows) + len(too_large)

    async def _claim(self, conn: psycopg.AsyncConnection) -> list[Row]:
        """A leased batch. Each row's data stays the JSON text PostgreSQL sent: the relay
        only passes it on, so parsing and writing it again would be wasted work."""
        self.claims += 1
        async with conn.cursor(row_factory=dict_row) as cur:
            cur.adapters.register_loader("jsonb", JsonTextLoader)
            await cur.execute(q("outbox_claim"), {
                "lease_s": self.options.lease_s, "relay": self.name,
                "limit": self.options.batch_size, "max_bytes": self.options.batch_max_bytes,
                "row_max": self.options.row_max_bytes, "start": uuid.uuid4(),
                "full": sorted(await self.transport.full_destinations())})
            found = await cur.fetchall()
        return [Row(**{**row, "attributes": json.loads(row["attributes"])}) for row in found]

    async def _record_persistently(self, results: list[Result],
                                   conn: psycopg.AsyncConnection) -> None:
        """Record a delivered batch, riding out a dropped database connection or two: a
        row delivered but not marked sent would be delivered again when its lease ends."""
        with translate_errors():
            try:
                return await self._record(results, conn)
            except DatabaseUnavailable:
                pass  # that connection is gone: fresh ones from the pool, after a wait
        async for attempt in retrying("recording a batch", DatabaseUnavailable,
                                      first_s=RETRY_BASE_S, max_s=RETRY_MAX_S,
                                      attempts=RECORD_ATTEMPTS - 1):
            with attempt:
                async with connection(self.pool) as fresh:
                    await self._record(results, fresh)

    async def _record(self, results: list[Result], conn: psycopg.AsyncConnection) -> None:
        sent = [r.row.id for r in results if isinstance(r, Sent)]
        retries = [r for r in results if isinstance(r, Retry)]
        dead = [r for r in results if isinstance(r, Dead)]
        dead += [Dead(r.row, f"gave up after {r.row.attempts} attempts: {r.error}")
                 for r in retries if r.row.attempts >= self.options.max_attempts]
        retries = [r for r in retries if r.row.attempts < self.options.max_attempts]
        if sent:
            await execute(conn, "outbox_mark_sent", ids=sent)
            self.delivered += len(sent)
        self.retried += len(retries)
        self.buried += len(dead)
        if retries:
            for r in retries:
                log.warning("outbox row %s: %s", r.row.id, r.error)
            await execute(conn, "outbox_mark_retry", rows=jsonb([
                {"id": r.row.id, "error": r.error, "delay_s": retry_delay_s(r.row.attempts)}
                for r in retries
            ]))
        for r in dead:
            await self._bury(conn, r)

    async def _bury(self, conn: psycopg.AsyncConnection, result: Dead) -> None:
        log.error("outbox row %s is dead: %s", result.row.id, result.error)
        row = result.row
        data = json.loads(row.data) if isinstance(row.data, JsonText) else row.data
        async with work(conn) as unit:
            await execute(conn, "outbox_mark_dead", id=row.id, error=result.error)
            await transport_gave_up(unit, consumer=row.destination, event_id=row.event_id,
                                    attributes=row.attributes, data=data, reason=result.error,
                                    origin="relay", process_id=row.process_id,
                                    job_id=row.job_id)

    async def _pump(self, stop: asyncio.Event) -> None:
        async for attempt in retrying("relay pump", DatabaseUnavailable, TransportUnavailable,
                                      first_s=RECONNECT_FIRST_S, max_s=RECONNECT_MAX_S,
                                      until=stop):
            with attempt:
                # a connection of its own while it works: no checkout on the hot path; a
                # dropped one fails the next query and is replaced after the backoff
                async with connection(self.pool) as conn:
                    while not stop.is_set():
                        claimed = await self.pump_once(conn)
                        started_over(attempt)
                        if claimed == self.options.batch_size:
                            self._wake.post()  # more may be due: another pump joins in
                            continue
                        await self._sleep(conn, claimed=claimed)

    def healthy(self, *, stale_after_s: float) -> str | None:
        """Why the relay is not working, or None: every task runs and a pump heard from
        the database lately (an idle pump does every ``poll_interval_s``)."""
        if not self._tasks or any(task.done() for task in self._tasks):
            return "the relay's tasks are not running"
        if time.monotonic() - self.last_round_trip > stale_after_s:
            return f"no database round trip in the last {stale_after_s:.0f}s"
        return None

    async def _sleep(self, conn: psycopg.AsyncConnection, *, claimed: int) -> None:
        row = await fetch_one(conn, "outbox_next_due")
        self.last_round_trip = time.monotonic()
        due = row and next(iter(row.values()))
        timeout = self.options.poll_interval_s if due is None else max(float(due), 0.0)
        if timeout == 0 and not claimed:
            # due, yet the claim took nothing: claiming again at once would spin every
            # pump on the same rows (a full queue stays full for longer than a claim)
            timeout = BLOCKED_WAIT_S
        timeout = min(timeout, self.options.poll_interval_s)
        if timeout > 0:
            await self._wake.wait(timeout)

    async def _listen(self, stop: asyncio.Event) -> None:
        async for attempt in retrying("relay listener", DatabaseUnavailable,
                                      first_s=RECONNECT_FIRST_S, max_s=RECONNECT_MAX_S,
                                      until=stop):
            with attempt, translate_errors():
                conn = await psycopg.AsyncConnection.connect(self.database_url, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self._wake.post()  # anything inserted while we were not listening
                    started_over(attempt)
                    async for _ in conn.notifies():
                        self._wake.post()
