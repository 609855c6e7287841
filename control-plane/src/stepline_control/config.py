"""The control plane's own settings: the runtime's :class:`~stepline.settings.Settings`
plus its limits, retention and stuck-job watchdog, read once from the environment at
the edge (the CLI)."""

from __future__ import annotations

from pydantic import Field

from stepline.settings import Settings

MAX_BODY_BYTES = 1024 * 1024
STATEMENT_TIMEOUT_S = 30.0
RETENTION_DAYS = 30.0
RETENTION_INTERVAL_S = 3600.0
RETENTION_BATCH = 1000
RETENTION_MAX_BATCHES = 100
DEAD_LETTER_RETENTION_DAYS = 90.0
METRICS_DB_TTL_S = 5.0
STUCK_AFTER_S = 15 * 60.0
STUCK_CHECK_INTERVAL_S = 60.0
CURRENCY = "USD"


class ControlSettings(Settings):
    """``STEPLINE_MAX_BODY_BYTES``, ``STEPLINE_RETENTION_DAYS`` and the rest."""

    max_body_bytes: int = Field(default=MAX_BODY_BYTES, ge=1024)
    statement_timeout_s: float = Field(default=STATEMENT_TIMEOUT_S, gt=0)
    # finished jobs (with their processes), sent outbox rows and inbox rows older than
    # this are pruned, usage rolled up first; 0 disables the task
    retention_days: float = Field(default=RETENTION_DAYS, ge=0)
    retention_interval_s: float = Field(default=RETENTION_INTERVAL_S, gt=0)
    retention_batch: int = Field(default=RETENTION_BATCH, ge=1, le=100_000)
    retention_max_batches: int = Field(default=RETENTION_MAX_BATCHES, ge=1)
    # a dead letter still open (never retried) is pruned this long after it was kept; a
    # resolved one after retention_days, as a finished job
    dead_letter_retention_days: float = Field(default=DEAD_LETTER_RETENTION_DAYS, gt=0)
    metrics_db_ttl_s: float = Field(default=METRICS_DB_TTL_S, ge=0)
    # a running job with outstanding work and no progress for this long is reported
    # stuck (API, metrics, a warning); checked every interval; 0 disables the check
    stuck_after_s: float = Field(default=STUCK_AFTER_S, ge=0)
    stuck_check_interval_s: float = Field(default=STUCK_CHECK_INTERVAL_S, gt=0)
    # the ISO 4217 code every price and statement is in
    currency: str = Field(default=CURRENCY, pattern="^[A-Z]{3}$")


def control_settings(settings: Settings) -> ControlSettings:
    """The control plane's settings for ``settings``: itself if it is one already,
    otherwise its values with the control plane's defaults (the environment is not read
    again here)."""
    if isinstance(settings, ControlSettings):
        return settings
    return ControlSettings.model_construct(**settings.model_dump())
