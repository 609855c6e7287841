"""The relay's own settings: how it reaches RabbitMQ and what it declares there
(``STEPLINE_AMQP_*``), and where it serves its probe (``STEPLINE_RELAY_*``). Read once
from the environment in a CLI and passed down."""

from __future__ import annotations

from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class AmqpSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STEPLINE_AMQP_", frozen=True, extra="ignore")

    # unset: no broker; the relay delivers straight to the functions over HTTP
    url: str | None = None
    # auto: quorum queues when the server has them (RabbitMQ 3.10+), classic otherwise
    queue_type: Literal["auto", "classic", "quorum"] = "auto"
    # put before every queue and exchange name (tests share one broker); none by default
    queue_prefix: str = ""
    # false: never declare the topology, only check it (a user without configure permission)
    declare: bool = True
    # the dead-letter recorder's own URL (a user that may read that queue); default: url
    dead_letters_url: str | None = None


class RelaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STEPLINE_RELAY_", frozen=True, extra="ignore")

    # serve /healthz and /metrics on this port (the cluster's Deployment probes 9090)
    metrics_port: int | None = None
