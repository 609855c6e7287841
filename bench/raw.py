"""This machine's raw limits, each measured with one plain client and nothing of Stepline
in the way: confirmed persistent publishes, consume + ack, single-row commits, and HTTP
POSTs of a binary CloudEvent to a func-python server."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp
import aiormq
import httpx
import psycopg
from pamqp.commands import Basic

from stepline_relay.mapping import AmqpMessage, HttpRequest

PERSISTENT = 2


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


def properties(message: AmqpMessage) -> Basic.Properties:
    return Basic.Properties(headers=dict(message.headers), content_type=message.content_type,
                            message_id=message.message_id, delivery_mode=PERSISTENT)


async def confirmed_publish(url: str, queue: str, message: AmqpMessage, count: int,
                            in_flight: int) -> Rate:
    """Persistent, mandatory publishes to a durable queue, ``in_flight`` unconfirmed at
    most, each awaited until its confirm."""
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        await channel.queue_declare(queue, durable=True)
        slots = asyncio.Semaphore(in_flight)
        props = properties(message)

        async def one() -> None:
            async with slots:
                await channel.basic_publish(message.body, routing_key=queue, properties=props,
                                            mandatory=True)

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(count)))
        return Rate(count, time.perf_counter() - started)
    finally:
        await connection.close()


async def consume_and_ack(url: str, queue: str, count: int, prefetch: int) -> Rate:
    """Consume ``count`` messages with manual acks, one ack per message."""
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel()
        await channel.basic_qos(prefetch_count=prefetch)
        done, seen = asyncio.Event(), 0

        async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
            nonlocal seen
            await channel.basic_ack(message.delivery_tag)
            seen += 1
            if seen == count:
                done.set()

        started = time.perf_counter()
        await channel.basic_consume(queue, on_message)
        await done.wait()
        return Rate(count, time.perf_counter() - started)
    finally:
        await connection.close()


def single_row_commits(database_url: str, count: int) -> Rate:
    """One INSERT and one COMMIT per row on one connection (fsync as configured)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_commits (id bigint, note text)")
        started = time.perf_counter()
        for i in range(count):
            conn.execute("INSERT INTO bench_commits VALUES (%s, %s)", (i, "row"))
        seconds = time.perf_counter() - started
        conn.execute("DROP TABLE bench_commits")
    return Rate(count, seconds)


async def http_posts_minimal(host: str, port: int, request: HttpRequest, count: int,
                             connections: int) -> Rate:
    """HTTP/1.1 keep-alive POSTs over plain asyncio streams: as little client as there
    can be, so the figure is the server's."""
    head = "".join(f"{k}: {v}\r\n" for k, v in request.headers.items())
    raw = (f"POST / HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-length: {len(request.body)}\r\n"
           f"{head}\r\n").encode() + request.body
    remaining = count

    async def client() -> None:
        nonlocal remaining
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while remaining > 0:
                remaining -= 1
                writer.write(raw)
                status = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                await reader.readexactly(length)
                if not status.split(b" ")[1].startswith(b"2"):
                    raise RuntimeError(f"POST answered {status!r}")
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    return Rate(count, time.perf_counter() - started)


async def http_posts_aiohttp(url: str, request: HttpRequest, count: int,
                             connections: int) -> Rate:
    """The same POSTs with aiohttp, the dispatcher's client."""
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        slots = asyncio.Semaphore(connections)
        headers = dict(request.headers)

        async def one() -> None:
            async with slots, session.post(url, headers=headers, data=request.body) as response:
                await response.read()
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(count)))
        return Rate(count, time.perf_counter() - started)


async def http_posts_httpx(url: str, request: HttpRequest, count: int,
                           connections: int) -> Rate:
    """The same POSTs with httpx, for comparison (the relay used it before aiohttp)."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, trust_env=False) as client:
        slots = asyncio.Semaphore(connections)
        headers = dict(request.headers)

        async def one() -> None:
            async with slots:
                (await client.post(url, headers=headers, content=request.body)).raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(count)))
        return Rate(count, time.perf_counter() - started)
