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


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 prefixes that carry an IPv4 address in their last 32 bits: a translator or relay
# on the way turns them into that IPv4, so they are only as public as it is
_IPV4_IN_LAST_32_BITS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "::/96",  # IPv4-compatible (deprecated, still routed by some stacks)
        "::ffff:0:0/96",  # IPv4-mapped
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
        "64:ff9b::/96",  # NAT64, well-known prefix
    )
)
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address ``ip`` stands for on the way (NAT64, 6to4, Teredo...)."""
    if any(ip in net for net in _IPV4_IN_LAST_32_BITS):
        return [ipaddress.IPv4Address(ip.packed[-4:])]
    if ip in _NAT64_LOCAL:  # RFC 6052, /48: the IPv4 straddles the reserved octet 8
        return [ipaddress.IPv4Address(ip.packed[6:8] + ip.packed[9:11])]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        return list(ip.teredo)
    return []


def is_public(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = embedded_ipv4(ip)
        if embedded and not all(is_public(v4) for v4 in embedded):
            return False
        if ip.ipv4_mapped:
            return is_public(ip.ipv4_mapped)
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
