"""Calls from a function to the outside world over HTTP, done once for every function
that makes them: the SSRF guard on every hop (redirects are followed by hand so each
target is checked), and the response mapped to the step's outcome — 2xx is a result;
408, 425, 429, 5xx, time-outs and connection errors are temporary (honouring
Retry-After); any other status is permanent."""

from __future__ import annotations

from typing import Any

import httpx

from stepline.context import Context
from stepline.errors import PermanentError, TemporaryError
from stepline.net import check_url, pinned

MAX_REDIRECTS = 5
TEMPORARY_STATUSES = frozenset({408, 425, 429})
MAX_RETRY_AFTER_S = 3600.0


class Outbound:
    """One pooled client per function server."""

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False)
        return self._client

    async def request(self, ctx: Context, method: str, url: str, **kwargs: Any) -> httpx.Response:
        allowed = ctx.allowed_networks
        for _ in range(MAX_REDIRECTS + 1):
            target, host, extensions = pinned(url, await check_url(url, allowed))
            headers = {**(kwargs.pop("headers", None) or {}), **host}
            try:
                response = await self.client.request(
                    method, target, headers=headers, extensions=extensions, **kwargs
                )
            except httpx.TimeoutException as exc:
                raise TemporaryError(f"{method} {url} timed out") from exc
            except httpx.TransportError as exc:
                raise TemporaryError(f"{method} {url} failed: {exc}") from exc
            ctx.log(f"{method} {url} -> {response.status_code}")
            if not response.is_redirect:
                return check_status(response, method, url)
            location = response.headers.get("location")
            following = str(httpx.URL(url).join(location)) if location else url
            # credentials go no further than the host they were meant for
            same_host = httpx.URL(following).host == httpx.URL(url).host
            kwargs["headers"] = {
                k: v
                for k, v in headers.items()
                if k != "Host" and (same_host or k.lower() != "authorization")
            }
            url = following
            if response.status_code == 303:
                method, kwargs["json"] = "GET", None
        raise PermanentError(f"more than {MAX_REDIRECTS} redirects")


def check_status(response: httpx.Response, method: str, url: str) -> httpx.Response:
    status = response.status_code
    if response.is_success:
        return response
    message = f"{method} {url} answered {status}"
    if status in TEMPORARY_STATUSES or status >= 500:
        raise TemporaryError(message, delay_s=retry_after(response))
    raise PermanentError(f"{message}: {response.text[:500]}")


def retry_after(response: httpx.Response) -> float | None:
    try:
        return min(float(response.headers["retry-after"]), MAX_RETRY_AFTER_S)
    except (KeyError, ValueError):
        return None


def decode(response: httpx.Response) -> Any:
    if not response.content:
        return None
    if "json" in response.headers.get("content-type", ""):
        try:
            return response.json()
        except ValueError as exc:
            raise PermanentError(f"response is not valid JSON: {exc}") from exc
    return response.text


def bearer(secret: dict[str, Any]) -> dict[str, str]:
    """Auth headers from a connection's secret: a Bearer ``token``, or ``headers``."""
    if token := secret.get("token"):
        return {"Authorization": f"Bearer {token}"}
    return dict(secret.get("headers", {}))
