"""Connections: a ``config`` that is shown and a ``secret`` that is write-only. Each
kind says which fields go where, so a password cannot land in ``config`` by mistake:
``postgres`` and ``http`` for actions, ``amqp`` (Queue), ``imap`` (Email) and ``twilio``
(Sms) for triggers.

A ``postgres`` config holds exactly the libpq keys the runtime passes on
(``stepline.conninfo``), and its host must be one network host: what can be told
without resolving it is refused here; where a name leads is checked where the
connection is opened, since DNS can change."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from stepline.net import host_problem
from stepline_control.schemas.common import Name, Strict

SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
ImapTls = Literal["ssl", "starttls", "none"]
Host = Annotated[str, Field(min_length=1, max_length=255)]
Port = Annotated[int, Field(ge=1, le=65535)]
AMQP_PORT, AMQPS_PORT = 5672, 5671
IMAP_PORT, IMAPS_PORT = 143, 993
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})


class PostgresConfig(Strict):
    host: str = Field(min_length=1, max_length=255)
    port: int = Field(default=5432, ge=1, le=65535)
    dbname: str = Field(min_length=1, max_length=63)
    user: str = Field(min_length=1, max_length=63)
    sslmode: SslMode | None = None
    application_name: str | None = Field(default=None, max_length=63)
    connect_timeout: int | None = Field(default=None, ge=1, le=300)

    @field_validator("host")
    @classmethod
    def _one_network_host(cls, host: str) -> str:
        if (problem := host_problem(host)) is not None:
            raise ValueError(f"host {problem}")
        return host


class PostgresSecret(Strict):
    password: str = Field(max_length=1000)


class HttpConfig(Strict):
    base_url: str | None = Field(default=None, pattern=r"^https?://", max_length=2000)
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _no_credentials(cls, headers: dict[str, str]) -> dict[str, str]:
        found = sorted(h for h in headers if h.lower() in SECRET_HEADERS)
        if found:
            raise ValueError(f"{', '.join(found)} belong in `secret`, which is never shown")
        return headers


class HttpSecret(Strict):
    token: str | None = Field(default=None, max_length=10_000,
                              description="sent as `Authorization: Bearer <token>`")
    headers: dict[str, str] | None = Field(default=None, description="sent as they are")


class AmqpConfig(Strict):
    """A RabbitMQ broker the Queue trigger consumes from; the port follows ``tls``."""

    host: Host
    port: Port | None = Field(default=None, description="default 5672, or 5671 with tls")
    vhost: str = Field(default="/", min_length=1, max_length=255)
    tls: bool = False

    @model_validator(mode="after")
    def _default_port(self) -> AmqpConfig:
        if self.port is None:
            self.port = AMQPS_PORT if self.tls else AMQP_PORT
        return self


class AmqpSecret(Strict):
    user: str = Field(min_length=1, max_length=255)
    password: str = Field(max_length=1000)


class ImapConfig(Strict):
    """A mailbox server the Email trigger polls; the port follows ``tls``."""

    host: Host
    port: Port | None = Field(default=None, description="default 993 with ssl, else 143")
    tls: ImapTls = "ssl"

    @model_validator(mode="after")
    def _default_port(self) -> ImapConfig:
        if self.port is None:
            self.port = IMAPS_PORT if self.tls == "ssl" else IMAP_PORT
        return self


class ImapSecret(Strict):
    user: str = Field(min_length=1, max_length=255)
    password: str = Field(max_length=1000)


class TwilioConfig(Strict):
    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    public_url: str | None = Field(
        default=None, pattern=r"^https?://[^/?#]+(/[^?#]*)?$", max_length=2000,
        description="the platform's address as Twilio was given it (behind a proxy): the "
        "signature is checked against it; unset, against the URL the request reached")


class TwilioSecret(Strict):
    auth_token: str = Field(min_length=1, max_length=200)


class PostgresConnectionCreate(Strict):
    name: Name
    kind: Literal["postgres"]
    config: PostgresConfig
    secret: PostgresSecret | None = None


class HttpConnectionCreate(Strict):
    name: Name
    kind: Literal["http"]
    config: HttpConfig = Field(default_factory=HttpConfig)
    secret: HttpSecret | None = None


class AmqpConnectionCreate(Strict):
    name: Name
    kind: Literal["amqp"]
    config: AmqpConfig
    secret: AmqpSecret


class ImapConnectionCreate(Strict):
    name: Name
    kind: Literal["imap"]
    config: ImapConfig
    secret: ImapSecret


class TwilioConnectionCreate(Strict):
    name: Name
    kind: Literal["twilio"]
    config: TwilioConfig
    secret: TwilioSecret


AnyConnectionCreate = (PostgresConnectionCreate | HttpConnectionCreate | AmqpConnectionCreate
                       | ImapConnectionCreate | TwilioConnectionCreate)
ConnectionCreate = Annotated[AnyConnectionCreate, Field(discriminator="kind")]


class ConnectionPublic(BaseModel):
    """A connection as the API shows it: the secret is write-only."""

    id: uuid.UUID
    name: str
    kind: str
    config: dict
    has_secret: bool
    created_at: datetime
