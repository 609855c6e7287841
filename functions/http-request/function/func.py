"""Http.request: calls an HTTP API described by the step's config (method, url,
headers, query, body — templated from the packet by the runtime), with auth from a
stored ``http`` connection, behind the SSRF guard; optionally extracts the list of items
with a JMESPath ``items_path`` and follows pagination, returning every page's items
(JMESPath runs bounded in time and memory, `stepline.bounded`).

With a connection, ``url`` is read under its ``base_url`` and must stay at that origin
(scheme, host, port): an absolute or ``//host`` URL elsewhere is a permanent error, so
the connection's credentials never leave it. A redirect or a ``next_link`` page at
another origin is fetched without them.

Every request but GET and HEAD carries the delivery's stable key (``Idempotency-Key``,
renamed or turned off by ``config.idempotency_header``), so an API that honours it acts
once however often the step is delivered."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count
from typing import Any
from urllib.parse import urljoin

from stepline.sdk import (
    CATALOG,
    Context,
    Credentials,
    FunctionHost,
    HttpRequestConfig,
    NextLinkPagination,
    Origin,
    Outbound,
    PagePagination,
    PermanentError,
    bounded_jmespath,
    decode,
    origin_of,
    own_headers,
)

# the methods that change nothing carry no key (RFC 9110's safe methods)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class HttpRequest:
    spec = CATALOG["Http.request"]

    def __init__(self) -> None:
        self.outbound = Outbound()

    async def run(self, ctx: Context[HttpRequestConfig]) -> Any:
        config = ctx.config
        url, credentials = config.url, None
        if config.connection:
            credentials = Credentials.of(await ctx.connection(config.connection, kind="http"))
            url = credentials.resolve(url)
        request = {"credentials": credentials, "headers": dict(config.headers),
                   "json": config.body, "timeout": config.timeout_s}
        pagination = config.pagination
        keys = idempotency_keys(ctx)
        if pagination is None:
            body = await self._get(ctx, url, dict(config.query), request, next(keys))
            if not config.items_path:
                return body
            return await bounded_jmespath(config.items_path, body, what="config.items_path")
        if not config.items_path:
            raise PermanentError("config.pagination needs config.items_path")
        if isinstance(pagination, PagePagination):
            return await self._numbered(ctx, url, pagination, request, keys)
        return await self._linked(ctx, url, pagination, request, keys)

    async def _get(self, ctx: Context[HttpRequestConfig], url: str, query: dict[str, Any],
                   request: dict, key: dict[str, str]) -> Any:
        request = {**request, "headers": with_key(request["headers"], key)}
        response = await self.outbound.request(ctx, ctx.config.method, url,
                                               params=query or None, **request)
        return decode(response)

    async def _numbered(self, ctx: Context[HttpRequestConfig], url: str,
                        pagination: PagePagination, request: dict,
                        keys: Iterator[dict[str, str]]) -> list:
        items: list[Any] = []
        query = dict(ctx.config.query)
        if pagination.size_param and pagination.size:
            query[pagination.size_param] = pagination.size
        for page in range(pagination.start, pagination.start + pagination.max_pages):
            found = await page_items(
                ctx, await self._get(ctx, url, {**query, pagination.param: page}, request,
                                    next(keys)))
            if not found:
                return items
            items += found
        raise PermanentError(f"more than {pagination.max_pages} pages")

    async def _linked(self, ctx: Context[HttpRequestConfig], url: str,
                      pagination: NextLinkPagination, request: dict,
                      keys: Iterator[dict[str, str]]) -> list:
        items: list[Any] = []
        origin = origin_of(url)
        query = dict(ctx.config.query)
        for _ in range(pagination.max_pages):
            body = await self._get(ctx, url, query, request, next(keys))
            items += await page_items(ctx, body)
            next_url = await bounded_jmespath(pagination.next_path, body,
                                              what="config.pagination.next_path")
            if not next_url:
                return items
            url, query = urljoin(url, next_url), {}
            request = elsewhere(ctx, request, origin, url)
        raise PermanentError(f"more than {pagination.max_pages} pages")


def elsewhere(ctx: Context[HttpRequestConfig], request: dict, origin: Origin, url: str) -> dict:
    """The request for a next page at ``url``: without credentials off their origin."""
    credentials = request["credentials"]
    if origin_of(url) == origin and (credentials is None or credentials.serves(url)):
        return request
    ctx.log(f"next page {url} is at another origin: fetched without credentials")
    return {**request, "credentials": None,
            "headers": own_headers(request["headers"], origin, url)}


def idempotency_keys(ctx: Context[HttpRequestConfig]) -> Iterator[dict[str, str]]:
    """The key header of each request of the step in turn: the delivery's key for the
    first, ``<key>:<n>`` for the n-th page; none for a safe method or with no header
    name."""
    name = ctx.config.idempotency_header
    for n in count(1):
        if name is None or ctx.config.method in SAFE_METHODS:
            yield {}
        else:
            yield {name: ctx.effect_key(None if n == 1 else str(n))}


def with_key(headers: dict[str, str], key: dict[str, str]) -> dict[str, str]:
    """The request's headers with the key's, unless the step sets that header itself
    (names compare regardless of case, as HTTP's do)."""
    own = {name.lower() for name in headers}
    return {**{k: v for k, v in key.items() if k.lower() not in own}, **headers}


async def page_items(ctx: Context[HttpRequestConfig], body: Any) -> list[Any]:
    found = await bounded_jmespath(ctx.config.items_path, body, what="config.items_path")
    if found is None:
        return []
    if not isinstance(found, list):
        raise PermanentError(f"config.items_path gave {type(found).__name__}, not an array")
    return found


def new() -> FunctionHost:
    return FunctionHost(HttpRequest())
