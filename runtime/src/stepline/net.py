"""The SSRF guard of the functions that call out: private, loopback, link-local and
other non-public addresses are refused unless an operator allow-lists their network
(``STEPLINE_HTTP_ALLOW_CIDRS``). Checked on the resolved addresses of every hop."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

from stepline.errors import PermanentError, TemporaryError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class AddressRefused(PermanentError):
    """The URL leads to an address this platform may not call."""


def is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_address(ip_text: str, allowed: Sequence[Network]) -> None:
    ip = ipaddress.ip_address(ip_text.split("%")[0])
    if is_public(ip) or any(ip in net for net in allowed):
        return
    raise AddressRefused(
        f"address {ip} is private, loopback or link-local; "
        "an operator can allow its network in STEPLINE_HTTP_ALLOW_CIDRS"
    )


async def check_url(url: str, allowed: Sequence[Network]) -> str:
    """Refuse ``url`` unless every address its host resolves to may be called; the
    address to connect to, so the request goes where the check looked (a second
    resolution could answer otherwise: DNS rebinding)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PermanentError(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, port, type=socket.SOCK_STREAM
        )
    except socket.gaierror as exc:
        raise TemporaryError(f"cannot resolve {parts.hostname!r}: {exc}") from exc
    for *_, sockaddr in infos:
        check_address(sockaddr[0], allowed)
    return infos[0][4][0]


def pinned(url: str, address: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """``url`` aimed at ``address``: the new URL, the Host header the server expects,
    and the TLS server name to verify the certificate against."""
    parts = urlsplit(url)
    host = f"[{address}]" if ":" in address else address
    netloc = host + (f":{parts.port}" if parts.port else "")
    authority = parts.hostname + (f":{parts.port}" if parts.port else "")
    return (
        parts._replace(netloc=netloc).geturl(),
        {"Host": authority},
        {"sni_hostname": parts.hostname} if parts.scheme == "https" else {},
    )
