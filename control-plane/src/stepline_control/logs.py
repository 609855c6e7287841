"""JSON log lines carrying the ids of what a line is about (request, account, job,
process). Ids are bound for the current request with :func:`bind`; every line logged
while handling it carries them. Request bodies and secrets are never logged: a line
holds its message, its ids and the fields a caller passes in ``extra``."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

CONTEXT_FIELDS = ("request_id", "account_id", "token_id", "workflow_id", "job_id", "process_id")
_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "stepline_log_context", default=None
)


def begin(**ids: Any) -> contextvars.Token:
    """Start a fresh context (one per request); :func:`end` restores the previous one."""
    return _context.set({k: str(v) for k, v in ids.items() if v is not None})


def end(token: contextvars.Token) -> None:
    _context.reset(token)


def bind(**ids: Any) -> None:
    """Add ids to the current context. The context is a dict shared by the whole
    request, so ids bound inside a dependency are seen by the access line too."""
    current = _context.get()
    if current is None:
        current = {}
        _context.set(current)
    current.update({k: str(v) for k, v in ids.items() if v is not None})


def current() -> dict[str, Any]:
    return dict(_context.get() or {})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the bound ids and the
    record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **current(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(level: str = "INFO") -> None:
    """JSON lines on stderr for the whole process; called once by the CLI."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("uvicorn.access").disabled = True  # the control plane logs its own
