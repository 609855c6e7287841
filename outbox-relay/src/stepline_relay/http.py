"""One-machine transport: rows POSTed straight to their function's server, with the rules
the RabbitmqSource adapter applies in the cluster: 2xx is delivered; 404, 413, 425, 429,
502, 503, 504 and connection errors are retried with backoff; anything else (400,
500, ...) is dead at once.

A claimed batch goes to each function as batch events (``dev.stepline.batch.v1``,
:func:`stepline.packet.batch_body`): one request for up to :data:`BATCH_EVENTS` rows,
the function answering each event's status as if it had come alone — so the rules
above hold per row, and a request per step is saved. The rows' data is passed on as
the JSON text PostgreSQL sent."""

from __future__ import annotations

import asyncio
import json
import uuid
from itertools import groupby

import aiohttp

from stepline.packet import BATCH_TYPE, batch_body
from stepline_relay.transport import Dead, Result, Retry, Row, Sent

RETRIED_STATUSES = frozenset({404, 413, 425, 429, 502, 503, 504})
REQUEST_TIMEOUT_S = 60.0
MAX_CONNECTIONS = 64
BATCH_EVENTS = 128
BATCH_SOURCE = "/stepline/relay"


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

    async def full_destinations(self) -> set[str]:
        """None: the relay waits for each batch's answers, so nothing queues up beyond
        what it has in flight."""
        return set()

    def _url(self, row: Row) -> str | None:
        """Where the row goes: its function's endpoint URL (one registered from outside
        the repository), or the URL this relay was given for its function."""
        return row.url or self.function_urls.get(row.target)

    async def deliver(self, rows: list[Row]) -> list[Result]:
        by_url = sorted(rows, key=lambda row: self._url(row) or "")
        chunks = [group[i:i + BATCH_EVENTS]
                  for _, found in groupby(by_url, key=lambda row: self._url(row) or "")
                  for group in [list(found)] for i in range(0, len(group), BATCH_EVENTS)]
        done = await asyncio.gather(*(self._post(chunk) for chunk in chunks))
        return [result for results in done for result in results]

    async def _post(self, rows: list[Row]) -> list[Result]:
        url = self._url(rows[0])
        if url is None:
            return [Retry(row, f"no URL configured for function {row.target!r}")
                    for row in rows]
        body = batch_body([(row.attributes, _text(row.data)) for row in rows])
        headers = {"ce-specversion": "1.0", "ce-id": str(uuid.uuid4()), "ce-type": BATCH_TYPE,
                   "ce-source": BATCH_SOURCE, "content-type": "application/json"}
        try:
            async with self._client().post(url, headers=headers, data=body) as response:
                status, text = response.status, await response.text(errors="replace")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return [Retry(row, f"POST {url}: {type(exc).__name__}: {exc}") for row in rows]
        if not 200 <= status < 300:  # the batch as a whole: each row gets its status
            return [verdict(row, status, f"POST {url} answered {status}: {text[:300]}")
                    for row in rows]
        return each_verdict(rows, url, text)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def each_verdict(rows: list[Row], url: str, text: str) -> list[Result]:
    """Each row's result from the function's answer to a batch (every event is answered
    by its id; one the answer does not name is sent again)."""
    try:
        answers = {a["id"]: a for a in json.loads(text)["results"]}
    except (ValueError, KeyError, TypeError):
        return [Retry(row, f"POST {url}: an answer to a batch that is not one: {text[:300]}")
                for row in rows]
    results = []
    for row in rows:
        answer = answers.get(str(row.event_id))
        if answer is None:
            results.append(Retry(row, f"POST {url}: the answer did not name event {row.event_id}"))
            continue
        status = int(answer.get("status", 500))
        results.append(verdict(row, status, f"POST {url} answered {status} for this event: "
                                            f"{json.dumps(answer.get('error'))[:300]}"))
    return results


def verdict(row: Row, status: int, error: str) -> Result:
    if 200 <= status < 300:
        return Sent(row)
    if status in RETRIED_STATUSES:
        return Retry(row, error)
    return Dead(row, error)


def _text(data: object) -> str:
    """A row's data as JSON text (the relay claims it as text already)."""
    return data if isinstance(data, str) else json.dumps(data)
