"""One poll of one Email step's mailbox: the messages past the step's cursor that match
its search, each fetched, read into its job's payload and started through the trigger
runtime with its keys — the mailbox's UIDVALIDITY and the message's UID, and its
Message-ID — recorded in the start's transaction, then flagged ``\\Seen`` (when the step
says so), and only then the cursor moved past it. A crash after the start and before
the flag leaves the message unseen and the cursor before it: the next poll finds it
again, and its keys start nothing twice.

A message that cannot start a job (a refused start, a payload the entry step cannot
take) is kept as a dead letter of the step, and the cursor moves past it."""

from __future__ import annotations

import hashlib
import json
import ssl
from dataclasses import dataclass, field
from typing import Any

from stepline.sdk import (
    EmailConfig,
    PermanentError,
    Refusal,
    Seen,
    StepTarget,
    TriggerRuntime,
    TriggerStep,
)

from .mailbox import Cursor, Fetched, Mailbox, Server, connect
from .message import parse_message

# a poll takes at most this many messages; the next poll takes the rest
MAX_PER_POLL = 100
DEAD_LETTER_BODY_CHARS = 64 * 1024


@dataclass
class Polled:
    started: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        return {"outcome": "polled", "started": self.started, "duplicates": self.duplicates,
                "rejected": self.rejected}


def box_id(server: Server, user: str, mailbox: str) -> str:
    """A short name of one mailbox of one account on one server: UIDs mean something
    only there."""
    return hashlib.sha256(f"{server.host}:{server.port}/{user}/{mailbox}".encode()).hexdigest()[:16]


def cursor_of(saved: dict[str, Any] | None, box: str) -> Cursor | None:
    if not saved or saved.get("box") != box:
        return None
    return Cursor(uidvalidity=int(saved["uidvalidity"]), uid=int(saved["uid"]))


def keys_of(box: str, uidvalidity: int, uid: int, message_id: str | None
            ) -> tuple[str, list[str]]:
    """The message's idempotency key, and its Message-ID as another name of it."""
    key = f"imap:{box}:{uidvalidity}:{uid}"
    if not message_id:
        return key, []
    return key, [f"message-id:{hashlib.sha256(message_id.encode()).hexdigest()}"]


async def poll(runtime: TriggerRuntime, step: TriggerStep, config: EmailConfig, *,
               context: ssl.SSLContext | None = None) -> Polled:
    """One poll; a failure to reach or use the mailbox raises the step's error."""
    stored = await runtime.connection(step.account_id, config.connection, kind="imap")
    server = Server(host=stored.config["host"], port=int(stored.config["port"]),
                    tls=stored.config.get("tls", "ssl"))
    user = str(stored.secret.get("user", ""))
    box = box_id(server, user, config.mailbox)
    polled = Polled()
    async with connect(server, user=user, password=str(stored.secret.get("password", "")),
                       mailbox=config.mailbox, allowed=runtime.settings.allowed_networks,
                       context=context) as mailbox:
        after = cursor_of(step.cursor, box)
        uids = await mailbox.new_uids(after=after, search=config.search)
        if not uids and after is not None and after.uidvalidity != mailbox.uidvalidity:
            await runtime.move_cursor(step.id, {"box": box, "uidvalidity": mailbox.uidvalidity,
                                                "uid": 0})
        for uid in uids[:MAX_PER_POLL]:
            fetched = await mailbox.fetch(uid)
            if fetched is not None:  # None: expunged meanwhile
                await take(runtime, step, config, mailbox, fetched, box, polled)
    return polled


async def take(runtime: TriggerRuntime, step: TriggerStep, config: EmailConfig,
               mailbox: Mailbox, fetched: Fetched, box: str, polled: Polled) -> None:
    """One message: its job started (or found started before), then ``\\Seen``."""
    payload = parse_message(fetched.raw, attachments=config.attachments)
    payload["truncated"] = payload["truncated"] or fetched.truncated
    key, also = keys_of(box, mailbox.uidvalidity, fetched.uid, payload["message_id"])
    cursor = {"box": box, "uidvalidity": mailbox.uidvalidity, "uid": fetched.uid}
    trigger = {"mailbox": config.mailbox, "uidvalidity": mailbox.uidvalidity, "uid": fetched.uid}
    reason = None
    try:
        started = await runtime.fire(StepTarget(step.id, "Email"), payload=payload,
                                     trigger="email", key=key, also=also, trigger_data=trigger)
    except PermanentError as exc:  # the entry step cannot take this payload
        reason = str(exc)
    else:
        reason = started.message if isinstance(started, Refusal) else None
    if reason is not None:
        await runtime.reject(step, key=key, reason=reason, body=letter_body(payload),
                             headers={"message_id": payload["message_id"] or "",
                                      "subject": payload["subject"]})
        polled.rejected += 1
    elif isinstance(started, Seen) or not started.created:
        polled.duplicates += 1
    else:
        polled.started += 1
    if config.mark_seen:
        await mailbox.mark_seen(fetched.uid)
    await runtime.move_cursor(step.id, cursor)


def letter_body(payload: dict[str, Any]) -> str:
    return json.dumps(payload)[:DEAD_LETTER_BODY_CHARS]
