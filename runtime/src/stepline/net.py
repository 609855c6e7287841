"""The address guard of every connection a function opens for a tenant (HTTP, a
``postgres`` connection, and any other kind): the target must be a network host — never
a unix socket, never a list of hosts — and every address it resolves to must be public
unless an operator allow-lists its network (``STEPLINE_HTTP_ALLOW_CIDRS``). The caller
connects to the address that was checked, so a second resolution cannot answer
otherwise (DNS rebinding). HTTP checks every hop."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

from stepline.errors import PermanentError, TemporaryError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


# a DNS name (RFC 1123, with the underscores some services use), as ASCII
_HOST_NAME = re.compile(
    r"^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
    r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$"
)


class AddressRefused(PermanentError):
    """The target is somewhere this platform may not connect to for a tenant."""


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


def host_problem(host: str) -> str | None:
    """Why ``host`` is not one network host (a DNS name or an IP address), or None.
    Said without resolving it, so the control plane can refuse such a host at once."""
    if not host:
        return "is empty, which means this machine's default unix socket"
    if host.startswith(("/", "@")):
        return "is a unix socket: only network hosts may be reached"
    if "," in host:
        return "names several hosts: give one"
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    try:
        ascii_name = host.encode("idna").decode("ascii")
    except UnicodeError:
        ascii_name = ""
    return None if _HOST_NAME.match(ascii_name) else "is not a host name or an IP address"


async def resolve(host: str, port: int, allowed: Sequence[Network]) -> str:
    """The address to connect to for ``host``: refused unless it is one network host
    whose every address may be reached; the caller connects there, not to ``host``."""
    if (problem := host_problem(host)) is not None:
        raise AddressRefused(f"host {host!r} {problem}")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        )
    except (socket.gaierror, UnicodeError) as exc:
        raise TemporaryError(f"cannot resolve {host!r}: {exc}") from exc
    for *_, sockaddr in infos:
        try:
            check_address(sockaddr[0], allowed)
        except AddressRefused as exc:
            if sockaddr[0] == host:
                raise
            raise AddressRefused(f"host {host!r}: {exc}") from None
    return infos[0][4][0]


async def check_url(url: str, allowed: Sequence[Network]) -> str:
    """Refuse ``url`` unless its host may be called; the address to send it to."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PermanentError(f"not an http(s) URL: {url!r}")
    return await resolve(parts.hostname, default_port(parts.scheme, parts.port), allowed)


def default_port(scheme: str, port: int | None) -> int:
    return port or (443 if scheme == "https" else 80)


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
