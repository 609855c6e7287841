"""Calls from a function to the outside world over HTTP, done once for every function
that makes them: the address guard on every hop (redirects are followed by hand so each
target is checked), a connection's credentials only for its own origin, and the
response mapped to the step's outcome — 2xx is a result; 408, 425, 429, 5xx, time-outs
and connection errors are temporary (honouring Retry-After); any other status is
permanent.

Credentials — everything an ``http`` connection adds: the ``Authorization`` of its
token, every header of its secret (cookies included) and of its config — go only to the
exact origin (scheme, host, port) of its ``base_url``. A call with a connection to any
other origin is a permanent error, never a silent strip; a connection with a secret but
no ``base_url`` lends it nowhere. A redirect or a pagination link to another origin is
followed without them, and without the step's own ``Authorization``, ``Cookie`` and
``Proxy-Authorization``. No secret value reaches an error message: a header value HTTP
cannot carry is refused by name, and what an upstream echoes is hidden. The client
reads nothing from the environment (proxies, ``.netrc``) and keeps no cookies."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any
from urllib.parse import urljoin

import httpx

from stepline.context import Context, StoredConnection
from stepline.errors import PermanentError, TemporaryError
from stepline.net import check_url, default_port, pinned
from stepline.secrets import secret_values, secrets_hidden

MAX_REDIRECTS = 5
TEMPORARY_STATUSES = frozenset({408, 425, 429})
MAX_RETRY_AFTER_S = 3600.0
# the step's own headers that are credentials: they stay with the origin the step named
SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HEADER_VALUE = re.compile(r"^[\x20-\x7e\t]*$")  # what httpx sends as it is: ASCII, no breaks

Origin = tuple[str, str, int]


def origin_of(url: str) -> Origin:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise PermanentError(f"not a valid URL: {url!r}") from exc
    return parsed.scheme, parsed.host, default_port(parsed.scheme, parsed.port)


@dataclass(frozen=True)
class Credentials:
    """What a connection lends a request, and the one origin it lends it to (None:
    it lends no secret, so its headers may go anywhere)."""

    connection: str
    base_url: str | None
    headers: Mapping[str, str]
    secrets: tuple[str, ...]

    @classmethod
    def of(cls, stored: StoredConnection, *, default_base: str | None = None) -> Credentials:
        base_url = stored.config.get("base_url") or default_base
        secret = stored.secret
        lent = {**stored.config.get("headers", {}), **secret.get("headers", {})}
        if secret.get("token"):
            lent["Authorization"] = f"Bearer {secret['token']}"
        if secret and not base_url:
            raise PermanentError(
                f"connection {stored.name!r} has a secret but no base_url: "
                "its credentials go only to the origin its base_url names"
            )
        return cls(stored.name, base_url, lent, secret_values(secret))

    def serves(self, url: str) -> bool:
        return self.base_url is None or origin_of(url) == origin_of(self.base_url)

    def resolve(self, url: str) -> str:
        """``url`` read under the connection's ``base_url``."""
        return urljoin(self.base_url, url) if self.base_url else url


# what a step may read of one response (documented in docs/operations.md, Limits)
RESPONSE_MAX_BYTES = 16 * 1024 * 1024


class Outbound:
    """One pooled client per function server."""

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                follow_redirects=False,
                # proxies and .netrc from the environment would steer tenants' calls
                trust_env=False,
                # one client serves every tenant: a cookie kept from one call would go
                # with another account's next call to the same address
                cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
            )
        return self._client

    async def request(
        self,
        ctx: Context,
        method: str,
        url: str,
        *,
        credentials: Credentials | None = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """``url`` called with the step's ``headers`` and, for their origin only, the
        ``credentials``; a permanent error if those credentials are not for ``url``."""
        if credentials is not None and not credentials.serves(url):
            raise PermanentError(
                f"{url} is not at the origin of connection {credentials.connection!r} "
                f"({credentials.base_url}): its credentials go nowhere else"
            )
        with secrets_hidden(credentials.secrets if credentials else ()):
            return await self._follow(ctx, method, url, credentials, dict(headers or {}), kwargs)

    async def _follow(
        self, ctx: Context, method: str, url: str, credentials: Credentials | None,
        headers: dict[str, str], kwargs: dict[str, Any],
    ) -> httpx.Response:
        allowed = ctx.allowed_networks
        origin = origin_of(url)
        for _ in range(MAX_REDIRECTS + 1):
            lent = credentials.headers if credentials and credentials.serves(url) else {}
            sent = merged(lent, own_headers(headers, origin, url))
            check_headers(sent, credentials)
            target, host, extensions = pinned(url, await check_url(url, allowed))
            response = await self._send(method, url, target, {**sent, **host}, extensions, kwargs)
            ctx.log(f"{method} {url} -> {response.status_code}")
            if not response.is_redirect:
                return check_status(response, method, url)
            location = response.headers.get("location")
            url = str(httpx.URL(url).join(location)) if location else url
            if response.status_code == 303:
                method, kwargs["json"] = "GET", None
        raise PermanentError(f"more than {MAX_REDIRECTS} redirects")

    async def _send(self, method, url, target, headers, extensions, kwargs) -> httpx.Response:
        """The response, its body read to at most :data:`RESPONSE_MAX_BYTES`: an API
        that answers with more fails the step, it cannot fill the function's memory."""
        try:
            request = self.client.build_request(method, target, headers=headers,
                                                extensions=extensions, **kwargs)
            response = await self.client.send(request, stream=True)
            try:
                body = bytearray()
                async for chunk in response.aiter_bytes():  # decoded: a zip bomb counts
                    body += chunk
                    if len(body) > RESPONSE_MAX_BYTES:
                        raise PermanentError(f"{method} {url} answered with more than "
                                             f"{RESPONSE_MAX_BYTES} bytes")
            finally:
                await response.aclose()
            kept = [(k, v) for k, v in response.headers.multi_items()
                    if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
            return httpx.Response(response.status_code, headers=kept, content=bytes(body),
                                  request=request)
        except httpx.TimeoutException as exc:
            raise TemporaryError(f"{method} {url} timed out") from exc
        except httpx.TransportError as exc:
            raise TemporaryError(f"{method} {url} failed: {exc}") from exc


def merged(lent: Mapping[str, str], own: Mapping[str, str]) -> dict[str, str]:
    """The connection's headers under the step's own, whatever their letter case."""
    overridden = {name.lower() for name in own}
    return {**{k: v for k, v in lent.items() if k.lower() not in overridden}, **own}


def own_headers(headers: Mapping[str, str], origin: Origin, url: str) -> dict[str, str]:
    """The step's headers for ``url``: its credentials only at the origin it named."""
    if origin_of(url) == origin:
        return dict(headers)
    return {k: v for k, v in headers.items() if k.lower() not in SENSITIVE_HEADERS}


def check_headers(headers: Mapping[str, str], credentials: Credentials | None) -> None:
    """Refuse a header HTTP cannot carry, naming it and never quoting its value: the
    HTTP library's own error would quote it, secret or not."""
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise PermanentError(f"{name!r} is not a valid HTTP header name")
        if not isinstance(value, str) or not _HEADER_VALUE.match(value):
            whose = (
                f"connection {credentials.connection!r}"
                if credentials and name in credentials.headers
                else "the step"
            )
            raise PermanentError(
                f"header {name!r} of {whose} has a value HTTP cannot carry "
                "(a line break, a control character or non-ASCII text)"
            )


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
