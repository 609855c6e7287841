"""One-machine transport: each row POSTed as a binary-mode CloudEvent straight to its
function's server, with the rules the RabbitmqSource adapter applies in the cluster:
2xx is delivered; 404, 413, 425, 429, 502, 503, 504 and connection errors are retried
with backoff; anything else (400, 500, ...) is dead at once."""

from __future__ import annotations

import asyncio

import aiohttp
from cloudevents.core.bindings.http import to_binary_event

from stepline.packet import to_cloudevent
from stepline_relay.transport import Dead, Result, Retry, Row, Sent

RETRIED_STATUSES = frozenset({404, 413, 425, 429, 502, 503, 504})
REQUEST_TIMEOUT_S = 60.0
MAX_CONNECTIONS = 64


class HttpTransport:
    """POSTs with aiohttp: on this machine httpx managed ~250 POSTs/s against a
    func-python server, aiohttp ~1,200 (see bench/README.md)."""

    def __init__(self, *, function_urls: dict[str, str], concurrency: int = MAX_CONNECTIONS):
        self.function_urls = function_urls
        self.concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # made in the event loop that uses it
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.concurrency),
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
            )
        return self._session

    async def ready(self) -> None:
        """Each row's POST says for itself whether its function is there."""

    async def deliver(self, rows: list[Row]) -> list[Result]:
        return list(await asyncio.gather(*(self._post(row) for row in rows)))

    async def _post(self, row: Row) -> Result:
        url = row.url or self.function_urls.get(row.target)
        if url is None:
            return Retry(row, f"no URL configured for function {row.target!r}")
        message = to_binary_event(to_cloudevent(row.attributes, row.data))
        try:
            async with self._client().post(url, headers=message.headers,
                                           data=message.body) as response:
                status, text = response.status, await response.text(errors="replace")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Retry(row, f"POST {url}: {type(exc).__name__}: {exc}")
        if 200 <= status < 300:
            return Sent(row)
        error = f"POST {url} answered {status}: {text[:300]}"
        if status in RETRIED_STATUSES:
            return Retry(row, error)
        return Dead(row, error)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
