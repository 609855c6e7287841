"""RdStation.getLeads: every contact of an RD Station Marketing segmentation, paging
``GET {base}/platform/segmentations/{id}/contacts?page=N&page_size=M`` from page 1 until
a page's ``contacts`` list is empty, with the Bearer token of an ``http`` connection.
429 and 5xx from the API are temporary failures (the step's retry policy applies).

The token goes only to the connection's origin: its ``base_url``, or RD Station's API
when it has none. ``base`` defaults to that; a ``base`` at another origin is a
permanent error."""

from __future__ import annotations

from typing import Any

from stepline.sdk import (
    CATALOG,
    Context,
    Credentials,
    FunctionHost,
    Outbound,
    PermanentError,
    RdStationGetLeadsConfig,
    decode,
)

MAX_PAGES = 10_000
RD_STATION_API = "https://api.rd.services"


class GetLeads:
    spec = CATALOG["RdStation.getLeads"]

    def __init__(self) -> None:
        self.outbound = Outbound()

    async def run(self, ctx: Context[RdStationGetLeadsConfig]) -> list[dict[str, Any]]:
        config = ctx.config
        stored = await ctx.connection(config.connection, kind="http")
        if not stored.secret.get("token"):
            raise PermanentError(f"connection {stored.name!r} must be http with a secret token")
        credentials = Credentials.of(stored, default_base=RD_STATION_API)
        url = (f"{(config.base or credentials.base_url).rstrip('/')}/platform/segmentations/"
               f"{config.segmentation_id}/contacts")
        contacts: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            response = await self.outbound.request(
                ctx, "GET", url, credentials=credentials,
                params={"page": page, "page_size": config.page_size})
            found = (decode(response) or {}).get("contacts")
            if not isinstance(found, list):
                raise PermanentError(f"page {page} has no `contacts` list")
            if not found:
                ctx.log(f"{len(contacts)} contacts in {page - 1} page(s)")
                return contacts
            contacts += found
        raise PermanentError(f"more than {MAX_PAGES} pages")


def new() -> FunctionHost:
    return FunctionHost(GetLeads())
