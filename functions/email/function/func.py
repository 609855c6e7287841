"""Email: polls an IMAP mailbox through an ``imap`` connection; each new message starts
one job with the payload :func:`.message.parse_message` makes (BRIEF.md, "Triggers from
everywhere").

Not wired yet: a job starts through ``stepline.lifecycle.start()``, which is being built.
This folder holds what does not depend on it — the mailbox adapter (``mailbox.py``) and
the message parser (``message.py``), each tested against a real Dovecot or on its own.
Until the wiring lands, ``new()`` refuses to serve, so no deployment of this function
can look "active" while it polls nothing."""

from __future__ import annotations

from stepline.errors import ConfigurationError


def new() -> None:
    raise ConfigurationError(
        "the Email function is not wired to start jobs yet (it waits for stepline.lifecycle)"
    )
