"""Configuration, read once from the environment at the edge (a CLI or ``new()``) and
passed down. Nothing reads ``os.environ`` anywhere else."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path(".stepline")
# as long as the control plane keeps a finished process (STEPLINE_RETENTION_DAYS), so a
# retry from the API still finds the effect it made
LEDGER_RETENTION_DAYS = 30.0


class Settings(BaseSettings):
    """The environment variables of the brief, all prefixed ``STEPLINE_``."""

    model_config = SettingsConfigDict(env_prefix="STEPLINE_", frozen=True, extra="ignore")

    database_url: str | None = None
    amqp_url: str | None = None
    secret_key: str | None = None
    bootstrap_token: str | None = None
    http_allow_cidrs: str = ""
    scheduler: Literal["local", "pingsource", "cronjob"] = "local"
    # one-machine mode: where the relay POSTs each function's CloudEvents
    function_urls: dict[str, str] = Field(default_factory=dict)
    data_dir: Path = DEFAULT_DATA_DIR
    log_level: str = "INFO"
    # the worker processes that evaluate what tenants write (stepline.bounded)
    sandbox_workers: int = Field(default=2, ge=1)
    sandbox_timeout_s: float = Field(default=1.0, gt=0)
    sandbox_memory_mb: int = Field(default=256, ge=128)
    # effect-ledger rows older than this are pruned from customers' databases; 0 keeps them
    ledger_retention_days: float = Field(default=LEDGER_RETENTION_DAYS, ge=0)

    @property
    def allowed_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [
            ipaddress.ip_network(part.strip(), strict=False)
            for part in self.http_allow_cidrs.split(",")
            if part.strip()
        ]

    @property
    def sandbox_limits(self):
        from stepline.bounded import Limits

        return Limits(timeout_s=self.sandbox_timeout_s, memory_mb=self.sandbox_memory_mb,
                      workers=self.sandbox_workers)

    def require_database_url(self) -> str:
        if not self.database_url:
            from stepline.errors import ConfigurationError

            raise ConfigurationError("STEPLINE_DATABASE_URL is not set")
        return self.database_url


def sqlalchemy_url(database_url: str) -> str:
    """The same server as a SQLAlchemy URL on the psycopg 3 driver."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {database_url.split('@')[-1]!r}")
