"""Http.request: calls an HTTP API described by the step's config (method, url,
headers, query, body — templated from the packet by the runtime), with auth from a
stored ``http`` connection, behind the SSRF guard; optionally extracts the list of items
with a JMESPath ``items_path`` and follows pagination, returning every page's items.

With a connection, ``url`` is read under its ``base_url`` and must stay at that origin
(scheme, host, port): an absolute or ``//host`` URL elsewhere is a permanent error, so
the connection's credentials never leave it. A redirect or a ``next_link`` page at
another origin is fetched without them."""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

import jmespath

from stepline.catalog import CATALOG
from stepline.errors import PermanentError
from stepline.host import FunctionHost
from stepline.outbound import Credentials, Origin, Outbound, decode, origin_of, own_headers
from stepline.step import Context


class HttpRequest:
    spec = CATALOG["Http.request"]

    def __init__(self) -> None:
        self.outbound = Outbound()

    async def run(self, ctx: Context) -> Any:
        config = ctx.config
        url, credentials = config["url"], None
        if config.get("connection"):
            stored = await ctx.connection(config["connection"])
            if stored.kind != "http":
                raise PermanentError(f"connection {stored.name!r} is {stored.kind}, not http")
            credentials = Credentials.of(stored)
            url = credentials.resolve(url)
        request = {
            "credentials": credentials,
            "headers": dict(config.get("headers") or {}),
            "json": config.get("body"),
            "timeout": config.get("timeout_s", 30.0),
        }
        pagination = config.get("pagination")
        if pagination is None:
            body = await self._get(ctx, url, dict(config.get("query") or {}), request)
            return jmespath.search(config["items_path"], body) if config.get("items_path") else body
        if not config.get("items_path"):
            raise PermanentError("config.pagination needs config.items_path")
        if pagination.get("mode", "page") == "page":
            return await self._numbered(ctx, url, pagination, request)
        return await self._linked(ctx, url, pagination, request)

    async def _get(self, ctx: Context, url: str, query: dict[str, Any], request: dict) -> Any:
        method = ctx.config.get("method", "GET")
        response = await self.outbound.request(ctx, method, url, params=query or None, **request)
        return decode(response)

    async def _numbered(self, ctx: Context, url: str, pagination: dict, request: dict) -> list:
        items: list[Any] = []
        query = dict(ctx.config.get("query") or {})
        if pagination.get("size_param") and pagination.get("size"):
            query[pagination["size_param"]] = pagination["size"]
        start = pagination.get("start", 1)
        for page in range(start, start + pagination.get("max_pages", 100)):
            found = page_items(
                ctx,
                await self._get(
                    ctx, url, {**query, pagination.get("param", "page"): page}, request
                ),
            )
            if not found:
                return items
            items += found
        raise PermanentError(f"more than {pagination.get('max_pages', 100)} pages")

    async def _linked(self, ctx: Context, url: str, pagination: dict, request: dict) -> list:
        items: list[Any] = []
        origin = origin_of(url)
        query = dict(ctx.config.get("query") or {})
        for _ in range(pagination.get("max_pages", 100)):
            body = await self._get(ctx, url, query, request)
            items += page_items(ctx, body)
            next_url = jmespath.search(pagination["next_path"], body)
            if not next_url:
                return items
            url, query = urljoin(url, next_url), {}
            request = elsewhere(ctx, request, origin, url)
        raise PermanentError(f"more than {pagination.get('max_pages', 100)} pages")


def elsewhere(ctx: Context, request: dict, origin: Origin, url: str) -> dict:
    """The request for a next page at ``url``: without credentials off their origin."""
    credentials = request["credentials"]
    if origin_of(url) == origin and (credentials is None or credentials.serves(url)):
        return request
    ctx.log(f"next page {url} is at another origin: fetched without credentials")
    return {**request, "credentials": None,
            "headers": own_headers(request["headers"], origin, url)}


def page_items(ctx: Context, body: Any) -> list[Any]:
    found = jmespath.search(ctx.config["items_path"], body)
    if found is None:
        return []
    if not isinstance(found, list):
        raise PermanentError(f"config.items_path gave {type(found).__name__}, not an array")
    return found


def new() -> FunctionHost:
    return FunctionHost(HttpRequest())
