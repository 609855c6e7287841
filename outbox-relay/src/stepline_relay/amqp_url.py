"""The AMQP URL, as plain text: checked before it is used, and redacted wherever it is
shown. The URL is aiormq's: ``amqp://user:password@host:5672/vhost`` or, over TLS,
``amqps://user:password@host:5671/vhost?cafile=/path/ca.crt`` with the query options in
:data:`TLS_OPTIONS` (aiormq 7.2's ``Connection`` reads them). The user, the password and
the vhost are percent-encoded (the vhost ``/`` is ``%2F``).

aiormq ignores what it does not know, and a TLS option on an ``amqp://`` URL silently
means a plain connection: :func:`url_problems` says so before connecting. :func:`redact`
is the only form of a URL that is ever logged."""

from __future__ import annotations

import os
from urllib.parse import parse_qs, quote, unquote, urlsplit

SCHEMES = frozenset({"amqp", "amqps"})
# the CA's file, folder or base64 DER; the client's own certificate and key (mutual
# TLS); ``no_verify_ssl=1`` turns the server's certificate check off (tests only)
TLS_OPTIONS = frozenset({"cafile", "capath", "cadata", "certfile", "keyfile", "no_verify_ssl"})
TLS_FILE_OPTIONS = ("cafile", "certfile", "keyfile")
# aiormq's other options: heartbeat and time-out (s), connection name, ``auth=external``
# (log in with the client certificate)
OTHER_OPTIONS = frozenset({"heartbeat", "timeout", "name", "auth"})
HIDDEN = "******"


def _host_part(url: str) -> str:
    """``host[:port]`` as written, whatever is before the ``@``."""
    return urlsplit(url).netloc.rpartition("@")[2]


def redact(url: str) -> str:
    """The URL with its password replaced by ``******``."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return parts._replace(netloc=f"{userinfo.partition(':')[0]}:{HIDDEN}@{host}").geturl()


def user_of(url: str) -> str:
    return unquote(urlsplit(url).username or "guest")


def vhost_of(url: str) -> str:
    """The vhost a URL names (``/`` when it names none), decoded."""
    path = urlsplit(url).path
    return unquote(path[1:]) if path not in ("", "/") else "/"


def url_for(*, host: str, port: int, vhost: str, tls: bool, user: str, password: str) -> str:
    """The URL of a broker given by its parts (a tenant's ``amqp`` connection)."""
    scheme = "amqps" if tls else "amqp"
    address = f"[{host}]" if ":" in host else host
    credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return f"{scheme}://{credentials}@{address}:{port}/{quote(vhost, safe='')}"


def url_with(url: str, *, user: str, password: str) -> str:
    """The same broker, vhost and options as another user."""
    credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return urlsplit(url)._replace(netloc=f"{credentials}@{_host_part(url)}").geturl()


def url_problems(url: str) -> list[str]:
    """What is wrong with an AMQP URL: its scheme, host or port; TLS options on a plain
    connection; files that are not there; options aiormq would ignore."""
    parts = urlsplit(url)
    options = parse_qs(parts.query, keep_blank_values=True)
    problems = []
    if parts.scheme not in SCHEMES:
        problems.append(f"the scheme must be amqp or amqps, not {parts.scheme!r}")
    try:
        if not parts.hostname or parts.port == 0:
            problems.append("no host")
    except ValueError:
        problems.append(f"bad port in {_host_part(url)!r}")
    tls = sorted(TLS_OPTIONS & set(options))
    if tls and parts.scheme != "amqps":
        problems.append(f"TLS option(s) {', '.join(tls)} need an amqps:// URL")
    for option in TLS_FILE_OPTIONS:
        problems += [f"{option}: no file {path!r}" for path in options.get(option, [])
                     if not os.path.isfile(path)]
    if "keyfile" in options and "certfile" not in options:
        problems.append("keyfile without certfile")
    unknown = sorted(set(options) - TLS_OPTIONS - OTHER_OPTIONS)
    if unknown:
        problems.append(f"unknown option(s) {', '.join(unknown)} (known: "
                        f"{', '.join(sorted(TLS_OPTIONS | OTHER_OPTIONS))})")
    return problems


def unverified(url: str) -> bool:
    """Whether the URL turns off the check of the server's certificate."""
    values = parse_qs(urlsplit(url).query).get("no_verify_ssl", ["0"])
    return any(value != "0" for value in values)
