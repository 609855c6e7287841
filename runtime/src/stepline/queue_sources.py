"""The Queue steps to consume now, each with the broker its ``amqp`` connection names: what
the cluster's reconciler makes a RabbitmqSource (and its Secret) of, and what the
one-machine consumer consumes itself. A paused or blocked workflow has none: its messages
wait in the queue until it resumes.

A step whose connection is missing, of another kind, or whose secret cannot be opened is
listed with its ``problem`` instead of a broker, so its health can say so."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

from stepline.db import fetch_all
from stepline.errors import PermanentError
from stepline.secrets import SecretBox

AMQP_PORT, AMQPS_PORT = 5672, 5671
DEFAULT_PREFETCH = 10


@dataclass(frozen=True)
class Broker:
    """An ``amqp`` connection's broker and credentials (``repr`` hides the password)."""

    host: str
    port: int
    vhost: str
    tls: bool
    user: str
    password: str

    def __repr__(self) -> str:
        return f"Broker({self.user}@{self.host}:{self.port}/{self.vhost}, tls={self.tls})"


@dataclass(frozen=True)
class QueueSource:
    step_id: uuid.UUID
    workflow_id: uuid.UUID
    account_id: uuid.UUID
    queue: str
    prefetch: int
    broker: Broker | None
    problem: str | None = None


def broker_of(config: dict[str, Any], secret: dict[str, Any]) -> Broker:
    tls = bool(config.get("tls", False))
    return Broker(host=str(config["host"]),
                  port=int(config.get("port") or (AMQPS_PORT if tls else AMQP_PORT)),
                  vhost=str(config.get("vhost") or "/"), tls=tls,
                  user=str(secret.get("user", "")), password=str(secret.get("password", "")))


def source_of(row: dict[str, Any], box: SecretBox) -> QueueSource:
    """One row of ``queue_sources`` (pure but for opening the secret)."""
    config = row["config"] or {}
    base = {"step_id": row["step_id"], "workflow_id": row["workflow_id"],
            "account_id": row["account_id"], "queue": str(config.get("queue", "")),
            "prefetch": int(config.get("prefetch") or DEFAULT_PREFETCH)}
    name = config.get("connection")
    if row["connection_kind"] is None:
        return QueueSource(**base, broker=None, problem=f"no connection named {name!r}")
    if row["connection_kind"] != "amqp":
        return QueueSource(**base, broker=None, problem=f"connection {name!r} is "
                           f"{row['connection_kind']}, not amqp")
    try:
        secret = box.open(row["connection_secret"]) if row["connection_secret"] else {}
    except PermanentError as exc:
        return QueueSource(**base, broker=None, problem=str(exc))
    return QueueSource(**base, broker=broker_of(row["connection_config"], secret))


async def queue_sources(conn: psycopg.AsyncConnection, box: SecretBox) -> list[QueueSource]:
    return [source_of(row, box) for row in await fetch_all(conn, "queue_sources")]
