"""The errors of the schedules package, rooted at :class:`SchedulesError`. The
Kubernetes adapter translates the client's exceptions into these, once."""

from __future__ import annotations

from stepline.errors import SteplineError


class SchedulesError(SteplineError):
    """Root of the errors of the schedule reconciler and the local ticker."""


class KubernetesUnavailable(SchedulesError):
    """The Kubernetes API could not be reached; the next pass tries again."""


class KubernetesRefused(SchedulesError):
    """The Kubernetes API answered a call with an error status."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class ObjectExists(KubernetesRefused):
    """A create found an object of that name already there (409)."""
