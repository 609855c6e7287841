"""What the platform declares on RabbitMQ, as plain values (declaring is ``amqp.py``'s).

One durable queue per function, named exactly after it (``Http.request``), so a
RabbitmqSource with ``predeclared: true`` and ``queueName: Http.request`` consumes it; every
function queue dead-letters into one fanout exchange bound to one dead-letter queue, which
the platform consumes and records (``dead_letter_queue.py``). The relay publishes to one durable
direct exchange, ``stepline.steps``, to which each function queue is bound by its own name,
with ``mandatory``, so a missing queue is a returned message (a failure), never a silent
drop. Publishing through an exchange of Stepline's own, not the default one, is what lets
the relay's RabbitMQ user be allowed to write there and nowhere else.

The permissions each of Stepline's RabbitMQ users needs (:func:`permission_table`) are
derived from the same names, so the docs, the manifests and the tests cannot drift from
what is declared: RabbitMQ grants ``configure``, ``write`` and ``read`` per vhost as
regular expressions over resource names (``""`` grants nothing).

Quorum queues are replicated and are RabbitMQ's recommended durable queue type from 3.8
on; a quorum queue dead-letters at-least-once only with ``x-dead-letter-strategy:
at-least-once``, which in turn needs ``x-overflow: reject-publish``. A prefix (default
none) puts every name in its own namespace, for tests sharing one broker.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from stepline.catalog import CATALOG, IN_PROCESS

QueueType = Literal["classic", "quorum"]
DEAD_LETTER_NAME = "stepline.dead-letters"
STEPS_EXCHANGE = "stepline.steps"
# what a regular expression must escape to match a name literally (PCRE, as RabbitMQ's)
_REGEX_SPECIAL = re.compile(r"([.^$*+?()\[\]{}|\\])")
# quorum queues (and at-least-once dead-lettering) arrived in RabbitMQ 3.8 and 3.10
QUORUM_SINCE = (3, 10)


def platform_functions() -> tuple[str, ...]:
    """Every catalog function that runs as its own service, so has a queue."""
    return tuple(sorted(name for name in CATALOG if name not in IN_PROCESS))


@dataclass(frozen=True)
class Topology:
    functions: tuple[str, ...]
    queue_type: QueueType = "classic"
    prefix: str = ""

    @property
    def steps_exchange(self) -> str:
        """The direct exchange the relay publishes to; routing key = the queue's name."""
        return self.prefix + STEPS_EXCHANGE

    @property
    def dead_letter_exchange(self) -> str:
        return self.prefix + DEAD_LETTER_NAME

    @property
    def dead_letter_queue(self) -> str:
        return self.prefix + DEAD_LETTER_NAME

    def queue(self, function: str) -> str:
        return self.prefix + function

    def function_of(self, queue: str) -> str:
        """The function a queue of this topology feeds (the queue's name less the prefix)."""
        return queue[len(self.prefix):] if self.prefix and queue.startswith(self.prefix) else queue

    def function_queue_arguments(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {"x-dead-letter-exchange": self.dead_letter_exchange}
        if self.queue_type == "quorum":
            arguments |= {"x-queue-type": "quorum", "x-overflow": "reject-publish",
                          "x-dead-letter-strategy": "at-least-once"}
        return arguments

    def dead_letter_queue_arguments(self) -> dict[str, Any]:
        return {"x-queue-type": "quorum"} if self.queue_type == "quorum" else {}

    def queues(self) -> Iterable[str]:
        return (self.queue(name) for name in self.functions)

    def names(self) -> tuple[str, ...]:
        """Every exchange and queue of this topology."""
        return (self.steps_exchange, self.dead_letter_exchange, self.dead_letter_queue,
                *self.queues())


@dataclass(frozen=True)
class Permissions:
    """One RabbitMQ user's permissions in a vhost: regular expressions over the names of
    exchanges and queues; ``""`` grants nothing."""

    configure: str = ""
    write: str = ""
    read: str = ""


def exactly(names: Iterable[str]) -> str:
    """A regular expression that matches exactly ``names``; ``""`` (nothing) for none."""
    escaped = sorted({_REGEX_SPECIAL.sub(r"\\\1", name) for name in names})
    if not escaped:
        return ""
    return f"^{escaped[0]}$" if len(escaped) == 1 else f"^({'|'.join(escaped)})$"


def setup_permissions(topology: Topology) -> Permissions:
    """Declaring it all: configure to declare, write and read because declaring a queue
    with a dead-letter exchange and binding a queue to an exchange check them too."""
    every = exactly(topology.names())
    return Permissions(configure=every, write=every, read=every)


def relay_permissions(topology: Topology) -> Permissions:
    """Publishing: write on the steps exchange, nothing else (no configure, no read)."""
    return Permissions(write=exactly([topology.steps_exchange]))


def consumer_permissions(topology: Topology, functions: Iterable[str]) -> Permissions:
    """A RabbitmqSource (or a one-machine dispatcher): read its functions' queues only."""
    return Permissions(read=exactly(topology.queue(name) for name in functions))


def dead_letter_permissions(topology: Topology) -> Permissions:
    """The dead-letter recorder: read the dead-letter queue only."""
    return Permissions(read=exactly([topology.dead_letter_queue]))


def permission_table(topology: Topology) -> dict[str, Permissions]:
    """Stepline's RabbitMQ users by their conventional names (one source user per
    function, named after its Knative Service), and what each may do."""
    table = {"stepline-topology": setup_permissions(topology),
             "stepline-relay": relay_permissions(topology),
             "stepline-dead-letters": dead_letter_permissions(topology)}
    for name in topology.functions:
        slug = CATALOG[name].slug if name in CATALOG else name.lower().replace(".", "-")
        table[f"stepline-source-{slug}"] = consumer_permissions(topology, [name])
    return table


def resolve_queue_type(setting: str, server_version: tuple[int, ...] | None) -> QueueType:
    """``auto`` picks quorum queues when the server has them, classic otherwise."""
    if setting in ("classic", "quorum"):
        return setting  # type: ignore[return-value]
    if setting != "auto":
        raise ValueError(f"queue type must be auto, classic or quorum, not {setting!r}")
    return "quorum" if server_version is not None and server_version >= QUORUM_SINCE else "classic"


def parse_version(text: str | bytes | None) -> tuple[int, ...] | None:
    """``"3.10.8"`` -> ``(3, 10, 8)``; None when the server does not say."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    if not text:
        return None
    parts = []
    for part in text.split("."):
        digits = part[:len(part) - len(part.lstrip("0123456789"))]
        if digits:
            parts.append(int(digits))
        if not digits or digits != part:
            break
    return tuple(parts) or None
