"""The exception tree of Stepline. Every error the platform raises on purpose is a
:class:`SteplineError`; a step function signals its outcome with the two leaves a user
writes: :class:`PermanentError` and :class:`TemporaryError`."""

from __future__ import annotations


class SteplineError(Exception):
    """Root of every error Stepline raises on purpose."""


class StepFailure(SteplineError):
    """A step could not produce its result."""


class PermanentError(StepFailure):
    """Retrying will not help: the process fails and the message becomes a dead letter."""


class TemporaryError(StepFailure):
    """Retrying may help: the attempt is recorded and the next one scheduled.

    ``delay_s`` overrides the step's backoff for the next attempt (an upstream's
    Retry-After, say)."""

    def __init__(self, message: str, *, delay_s: float | None = None) -> None:
        super().__init__(message)
        self.delay_s = delay_s


class Unauthorized(PermanentError):
    """A call that did not prove it may do what it asks."""


class TooLarge(PermanentError):
    """A request body past the documented limit: refused before it is read whole."""


class Rejected(PermanentError):
    """Input that breaks a rule the user set (a Webhook's payload schema); ``problems``
    names each field."""

    def __init__(self, message: str, problems: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.problems = problems


class MalformedEvent(SteplineError):
    """A delivery that is not a packet Stepline can act on. It is kept as a dead letter."""


class DatabaseUnavailable(SteplineError):
    """PostgreSQL could not be reached or dropped the connection mid-way. Nothing was
    committed; the transport must deliver again."""


class ConfigurationError(SteplineError):
    """A setting is missing or wrong; raised at start-up, never mid-flight."""
