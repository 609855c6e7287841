"""What a service says when it cannot do what it was asked, in the domain's words.
The API turns each kind into its HTTP status in one place (:mod:`stepline_control.errors`);
a service never speaks HTTP."""

from __future__ import annotations

from typing import Any

from stepline.lifecycle import Refusal


class ServiceError(Exception):
    def __init__(self, message: str, code: str, details: Any = None) -> None:
        super().__init__(message)
        self.message, self.code, self.details = message, code, details


class NotFound(ServiceError):
    """The object does not exist in the caller's account (or at all: the same answer)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} not found", "not_found")


class Conflict(ServiceError):
    """The object's state does not allow the change now."""

    def __init__(self, message: str, code: str = "conflict") -> None:
        super().__init__(message, code)


class Invalid(ServiceError):
    """The input breaks a rule; ``details`` names each field: ``[{field, message}]``."""

    def __init__(self, message: str, details: Any = None, code: str = "invalid") -> None:
        super().__init__(message, code, details)


class Malformed(ServiceError):
    """The input cannot even be read (a body that is not JSON, a broken CloudEvent)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "malformed")


class NotSigned(ServiceError):
    """A provider's call (an inbound SMS) whose signature does not hold: nothing of it
    is started or stored."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "bad_signature")


class Unavailable(ServiceError):
    """Something the service needs is missing for now."""


class Refused(ServiceError):
    """Admission refused a start (:mod:`stepline.lifecycle.admission`)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message, refusal.code)
        self.refusal = refusal
