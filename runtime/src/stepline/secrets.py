"""Connection secrets, encrypted at rest with Fernet under ``STEPLINE_SECRET_KEY``."""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from stepline.errors import ConfigurationError, PermanentError


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
