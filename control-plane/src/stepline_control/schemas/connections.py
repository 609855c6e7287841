"""Connections: a ``config`` that is shown and a ``secret`` that is write-only. Each
kind says which fields go where, so a password cannot land in ``config`` by mistake.

A ``postgres`` config holds exactly the libpq keys the runtime passes on
(``stepline.conninfo``), and its host must be one network host: what can be told
without resolving it is refused here; where a name leads is checked where the
connection is opened, since DNS can change."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator

from stepline.net import host_problem
from stepline_control.schemas.common import Name, Strict

SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
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


ConnectionCreate = Annotated[PostgresConnectionCreate | HttpConnectionCreate,
                             Field(discriminator="kind")]


class ConnectionPublic(BaseModel):
    """A connection as the API shows it: the secret is write-only."""

    id: uuid.UUID
    name: str
    kind: str
    config: dict
    has_secret: bool
    created_at: datetime
