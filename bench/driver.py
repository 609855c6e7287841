"""A bench driver that costs little: HTTP/1.1 keep-alive POSTs over plain asyncio
streams, each request's bytes built once and sent again, the answer parsed no further
than its status and length. A general client (httpx: ~3 ms of CPU a POST here) would
take a whole core at the rate the platform is meant to reach; this one takes a few
tens of microseconds, and what it does take is measured and printed on its own."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

RETRY_S = 0.1


class DriverError(Exception):
    """The server answered something the driver cannot read, or an error status."""


class Closed(DriverError):
    """The connection was closed before an answer began."""


def request_bytes(host: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (f"POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-length: {len(body)}\r\n"
            f"content-type: application/json\r\n{head}\r\n").encode() + body


@dataclass
class Connection:
    """One keep-alive connection; one request at a time on it."""

    host: str
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    @classmethod
    async def open(cls, base_url: str) -> Connection:
        url = urlsplit(base_url)
        reader, writer = await asyncio.open_connection(url.hostname, url.port or 80)
        return cls(url.netloc, reader, writer)

    async def send(self, request: bytes) -> tuple[int, bytes]:
        """Send prepared bytes; the answer's status and body."""
        self.writer.write(request)
        status_line = await self.reader.readline()
        if not status_line:
            raise Closed("the server closed the connection")
        length, chunked = None, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise DriverError(f"not an HTTP answer: {status_line!r}")
        if chunked:
            return int(parts[1]), await self._chunks()
        if length is None:
            raise DriverError(f"an answer without a length: {status_line!r}")
        return int(parts[1]), await self.reader.readexactly(length)

    async def _chunks(self) -> bytes:
        body = b""
        while size := int((await self.reader.readline()).split(b";")[0], 16):
            body += await self.reader.readexactly(size)
            await self.reader.readline()
        await self.reader.readline()  # the blank line after the last chunk (no trailers)
        return body

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


class Poster:
    """POSTs of one JSON body to one path (with a bearer token, if given), over
    keep-alive connections opened on demand and reused: as many as run at once."""

    def __init__(self, base_url: str, token: str | None, path: str, payload: Any, *,
                 retry: frozenset[int] = frozenset()) -> None:
        self.base_url = base_url
        self.retry = retry  # statuses answered again after RETRY_S, as a client would
        self.retried = 0
        body = json.dumps(payload).encode()
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.request = request_bytes(urlsplit(base_url).netloc, path, body, headers)
        self._idle: list[Connection] = []
        self.sent = 0

    async def post(self) -> bytes:
        """One POST; the answer's body (a status outside 2xx raises)."""
        status, body = await self._send()
        while status in self.retry:
            self.retried += 1
            await asyncio.sleep(RETRY_S)
            status, body = await self._send()
        self.sent += 1
        if not 200 <= status < 300:
            raise DriverError(f"POST answered {status}: {body[:200]!r}")
        return body

    async def _send(self) -> tuple[int, bytes]:
        """On a kept connection if there is one; a server may close a connection it
        has kept idle (node's after 5 s) just as a request goes out, and then the
        request is sent again on a new one, as HTTP clients do."""
        if self._idle:
            conn = self._idle.pop()
            try:
                return self._keep(conn, await conn.send(self.request))
            except (ConnectionError, Closed):
                conn.writer.close()
        conn = await Connection.open(self.base_url)
        try:
            return self._keep(conn, await conn.send(self.request))
        except BaseException:
            conn.writer.close()  # half an answer may be left on it
            raise

    def _keep(self, conn: Connection, answer: tuple[int, bytes]) -> tuple[int, bytes]:
        self._idle.append(conn)
        return answer

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()


async def paced(poster: Poster, finished: Callable[[], Awaitable[int]], *, clients: int,
                total: int, poll_s: float = 0.01, timeout_s: float = 900.0) -> list[bytes]:
    """``total`` POSTs that each start an execution answered before it ends (a 202),
    from ``clients`` clients that each call again only when an execution has finished:
    at most ``clients`` unfinished at once. ``finished`` counts the finished ones."""
    tasks: list[asyncio.Task[bytes]] = []
    failed: list[asyncio.Task[bytes]] = []
    deadline = asyncio.get_running_loop().time() + timeout_s
    while (done := await finished()) < total:
        if failed:
            await failed[0]  # its error, rather than waiting for an execution never started
        if asyncio.get_running_loop().time() > deadline:
            raise DriverError(f"{done} of {total} executions finished after {timeout_s:.0f}s")
        room = min(clients - (len(tasks) - done), total - len(tasks))
        for _ in range(max(room, 0)):
            tasks.append(task := asyncio.create_task(poster.post()))
            task.add_done_callback(lambda t: failed.append(t)
                                   if t.cancelled() or t.exception() else None)
        await asyncio.sleep(poll_s)
    return [await task for task in tasks]
