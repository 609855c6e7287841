"""What a transport tells the relay about each row it was given."""

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

    async def deliver(self, rows: list[Row]) -> list[Result]: ...

    async def close(self) -> None: ...
