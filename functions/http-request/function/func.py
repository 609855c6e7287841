"""Http.request: calls an HTTP API described by the step's config (method, url,
headers, query, body — templated from the packet by the runtime), with auth from a
stored ``http`` connection, behind the SSRF guard; optionally extracts the list of items
with a JMESPath ``items_path`` and follows pagination, returning every page's items
(JMESPath runs bounded in time and memory, `stepline.bounded`)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

from stepline import bounded
from stepline.catalog import CATALOG
from stepline.errors import PermanentError
from stepline.host import FunctionHost
from stepline.outbound import Outbound, bearer, decode
from stepline.step import Context


class HttpRequest:
    spec = CATALOG["Http.request"]

    def __init__(self) -> None:
        self.outbound = Outbound()

    async def run(self, ctx: Context) -> Any:
        config = ctx.config
        url, headers = config["url"], dict(config.get("headers") or {})
        if config.get("connection"):
            stored = await ctx.connection(config["connection"])
            if stored.kind != "http":
                raise PermanentError(f"connection {stored.name!r} is {stored.kind}, not http")
            url = urljoin(stored.config.get("base_url", ""), url)
            headers = {**stored.config.get("headers", {}), **bearer(stored.secret), **headers}
        request = {
            "headers": headers,
            "json": config.get("body"),
            "timeout": config.get("timeout_s", 30.0),
        }
        pagination = config.get("pagination")
        if pagination is None:
            body = await self._get(ctx, url, dict(config.get("query") or {}), request)
            if not config.get("items_path"):
                return body
            return await bounded.jmespath(config["items_path"], body, what="config.items_path")
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
            found = await page_items(
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
        query = dict(ctx.config.get("query") or {})
        for _ in range(pagination.get("max_pages", 100)):
            body = await self._get(ctx, url, query, request)
            items += await page_items(ctx, body)
            next_url = await bounded.jmespath(pagination["next_path"], body,
                                              what="config.pagination.next_path")
            if not next_url:
                return items
            url, query = urljoin(url, next_url), {}
        raise PermanentError(f"more than {pagination.get('max_pages', 100)} pages")


async def page_items(ctx: Context, body: Any) -> list[Any]:
    found = await bounded.jmespath(ctx.config["items_path"], body, what="config.items_path")
    if found is None:
        return []
    if not isinstance(found, list):
        raise PermanentError(f"config.items_path gave {type(found).__name__}, not an array")
    return found


def new() -> FunctionHost:
    return FunctionHost(HttpRequest())
