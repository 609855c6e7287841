"""A tenant's ``postgres`` connection as a libpq connection string, through the address
guard (``stepline.net``): only the keys listed here reach libpq, so none can point the
connection elsewhere (``hostaddr``, ``service``, ``passfile``, a second host...); the
host is resolved and checked, and the checked address is pinned as ``hostaddr`` while
``host`` stays for TLS verification. The platform's own ambient credentials (a password
file, a client certificate, a Kerberos ticket) are never offered to a tenant's server."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from psycopg.conninfo import make_conninfo

from stepline.net import AddressRefused, Network, resolve

DEFAULT_PORT = 5432
# what a tenant may set: everything else libpq knows is refused, not dropped, so a
# stored connection that asks for more fails clearly instead of going somewhere else
CONNINFO_KEYS = frozenset(
    {"host", "port", "dbname", "user", "sslmode", "application_name", "connect_timeout"}
)
# libpq falls back on the platform's files and tickets for what a connection leaves
# unset; a tenant's server gets none of them
NO_AMBIENT_CREDENTIALS = {
    "passfile": os.devnull,
    "sslcertmode": "disable",
    "gssencmode": "disable",
    "require_auth": "password,md5,scram-sha-256,none",
}


def config_problem(config: Mapping[str, Any]) -> str | None:
    """What in a stored connection's ``config`` libpq must not see, or None."""
    unknown = sorted(set(config) - CONNINFO_KEYS)
    if unknown:
        return f"the key(s) {', '.join(unknown)} may not be set on a postgres connection"
    port = config.get("port", DEFAULT_PORT)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        return f"port {port!r} is not a TCP port"
    if not isinstance(config.get("host"), str):
        return "no host is given, which means this machine's default unix socket"
    return None


async def guarded_conninfo(
    config: Mapping[str, Any], secret: Mapping[str, Any], allowed: Sequence[Network]
) -> str:
    """The connection string for a stored ``postgres`` connection, aimed at the one
    address the guard checked; :class:`AddressRefused` when it may not be reached."""
    if (problem := config_problem(config)) is not None:
        raise AddressRefused(problem)
    port = config.get("port", DEFAULT_PORT)
    address = await resolve(config["host"], port, allowed)
    return make_conninfo(
        **{k: v for k, v in config.items() if v is not None and k != "port"},
        port=port,
        hostaddr=address,
        # always given, even empty, so libpq never reads PGPASSWORD instead
        password=str(secret.get("password") or ""),
        **NO_AMBIENT_CREDENTIALS,
    )
