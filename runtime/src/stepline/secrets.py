"""Connection secrets, encrypted at rest with Fernet under ``STEPLINE_SECRET_KEY``, and
kept out of what a step records: an error raised while a secret is in use has every
value of it replaced before it reaches a process, a dead letter or a log."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from stepline.errors import ConfigurationError, PermanentError, StepFailure

HIDDEN = "[secret]"


class SecretBox:
    """Encrypts and decrypts the JSON secret part of a connection."""

    def __init__(self, key: str | None) -> None:
        if not key:
            raise ConfigurationError("STEPLINE_SECRET_KEY is not set: secrets cannot be used")
        try:
            self._fernet = Fernet(key.encode())
        except ValueError as exc:
            raise ConfigurationError(
                "STEPLINE_SECRET_KEY is not a Fernet key (32 url-safe base64-encoded bytes)"
            ) from exc

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()

    def seal(self, secret: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(json.dumps(secret).encode())

    def open(self, token: bytes) -> dict[str, Any]:
        try:
            return json.loads(self._fernet.decrypt(bytes(token)))
        except InvalidToken as exc:
            raise PermanentError("a connection secret cannot be decrypted with this key") from exc


def secret_values(secret: Any) -> tuple[str, ...]:
    """Every text in a secret, longest first, so no part of one is left showing."""
    if isinstance(secret, dict):
        found = [v for value in secret.values() for v in secret_values(value)]
    elif isinstance(secret, list):
        found = [v for value in secret for v in secret_values(value)]
    else:
        found = [secret] if isinstance(secret, str) and secret else []
    return tuple(sorted(set(found), key=len, reverse=True))


def scrub(text: str, values: Sequence[str]) -> str:
    for value in values:
        text = text.replace(value, HIDDEN)
    return text


@contextmanager
def secrets_hidden(values: Sequence[str]) -> Iterator[None]:
    """A step failure raised inside comes out with ``values`` hidden in its message (an
    upstream echoing a header, a library quoting what it refused), chained to nothing
    that still shows them."""
    try:
        yield
    except StepFailure as exc:
        message = scrub(str(exc), values)
        if message == str(exc):
            raise
        hidden = copy.copy(exc)
        hidden.args = (message,)
        raise hidden from None
