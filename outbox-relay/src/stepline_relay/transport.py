"""What a transport tells the relay about each row it was given, and where a row goes:
to its destination function's queue (or URL, on one machine), unless the function's
catalog row names an ``endpoint`` — a function registered from outside the repository
(its URL on one machine, its queue in the cluster), or a service (the function that
serves every service)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from stepline.errors import SteplineError


class TransportUnavailable(SteplineError):
    """The transport cannot take anything now (the broker is unreachable): the relay
    claims nothing and tries again after a backoff, without spending rows' attempts."""


@dataclass(frozen=True)
class Row:
    id: int
    event_id: str
    destination: str
    attributes: dict[str, Any]
    data: Any
    attempts: int
    job_id: Any
    process_id: Any
    endpoint: str | None = None
    size: int = 0  # bytes of data as stored; a row too large to carry comes without it

    @property
    def url(self) -> str | None:
        """The endpoint, when it is a URL."""
        endpoint = self.endpoint or ""
        return endpoint if endpoint.startswith(("http://", "https://")) else None

    @property
    def target(self) -> str:
        """The function (the queue) the row goes to when it has no URL."""
        return self.endpoint if self.endpoint and not self.url else self.destination


@dataclass(frozen=True)
class Sent:
    row: Row


@dataclass(frozen=True)
class Retry:
    row: Row
    error: str


@dataclass(frozen=True)
class Dead:
    row: Row
    error: str


Result = Sent | Retry | Dead


class Transport(Protocol):
    async def ready(self) -> None:
        """Raise :class:`TransportUnavailable` if nothing can be delivered now."""

    async def full_destinations(self) -> set[str]:
        """The functions that should take no more rows for now (a queue's backlog)."""

    async def deliver(self, rows: list[Row]) -> list[Result]: ...

    async def close(self) -> None: ...
