"""The Email trigger's mailbox adapter (functions/email/function/mailbox.py) against a
real Dovecot: what a poll sees, what it leaves unseen, how each failure is classified,
and that a server restarted mid-poll loses nothing."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator

import pytest
from aioimaplib import Response

from stepline.errors import PermanentError, TemporaryError
from stepline.net import AddressRefused

from .dovecot import Dovecot
from .email_function import mailbox, message
from .test_email_message import alternative

LOCAL = [ipaddress.ip_network("127.0.0.0/8")]
# a hang is a failure, never a slow pass: every await of a test is bounded by this
BOUND_S = 120.0


def mail(subject: str, sender: str = "dave@example.com") -> bytes:
    return (
        f"From: {sender}\r\nTo: alice@example.org\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@example.com>\r\n\r\nbody of {subject}\r\n"
    ).encode()


def open_box(server: Dovecot, *, user: str = "alice", password: str | None = None,
             tls: mailbox.TlsMode = "none", port: int | None = None, **kwargs):
    return mailbox.connect(
        mailbox.Server("127.0.0.1", port or server.port, tls),
        user=user,
        password=server.users[user] if password is None else password,
        allowed=kwargs.pop("allowed", LOCAL),
        **kwargs,
    )


async def subjects(box: mailbox.Mailbox, uids: list[int]) -> list[str]:
    found = []
    for uid in uids:
        fetched = await box.fetch(uid)
        assert fetched is not None
        found.append(message.parse_message(fetched.raw)["subject"])
    return found


async def test_a_poll_sees_exactly_the_appended_messages(dovecot: Dovecot) -> None:
    uids = [dovecot.append("alice", mail(f"order {n}")) for n in range(3)]
    dovecot.append("bob", mail("not alice's"))
    async with open_box(dovecot) as box:
        assert box.uidvalidity > 0
        found = await box.new_uids(after=None)
        assert found == uids
        assert await subjects(box, found) == ["order 0", "order 1", "order 2"]


async def test_the_payload_of_a_fetched_message(dovecot: Dovecot) -> None:
    uid = dovecot.append("alice", alternative().as_bytes())
    async with open_box(dovecot) as box:
        fetched = await box.fetch(uid)
    assert fetched is not None and not fetched.truncated
    payload = message.parse_message(fetched.raw)
    assert payload["subject"] == "Pedido nº 42 — confirmação"
    assert payload["html"] == "<p>Olá, o pedido <b>está</b> confirmado.</p>\n"


async def test_fetching_leaves_seen_alone_and_mark_seen_sets_it(dovecot: Dovecot) -> None:
    first, second = (dovecot.append("alice", mail(s)) for s in ("first", "second"))
    async with open_box(dovecot) as box:
        await box.fetch(first)
        await box.fetch(second)
        assert b"\\Seen" not in dovecot.flags("alice", first)
        await box.mark_seen(first)
        assert b"\\Seen" in dovecot.flags("alice", first)
        assert await box.new_uids(after=None) == [second]  # UNSEEN by default


async def test_a_second_poll_past_the_cursor_sees_only_what_came_after(dovecot: Dovecot) -> None:
    for n in range(2):
        dovecot.append("alice", mail(f"early {n}"))
    async with open_box(dovecot) as box:
        cursor = box.cursor((await box.new_uids(after=None, search="ALL"))[-1])
    async with open_box(dovecot) as box:
        assert await box.new_uids(after=cursor, search="ALL") == []
    late = dovecot.append("alice", mail("late"))
    async with open_box(dovecot) as box:
        assert await box.new_uids(after=cursor, search="ALL") == [late]


async def test_a_changed_uidvalidity_is_detected_and_resets_the_cursor(dovecot: Dovecot) -> None:
    imap = dovecot.client("alice")
    imap.create("Orders")
    for n in range(3):
        dovecot.append("alice", mail(f"old {n}"), mailbox="Orders")
    async with open_box(dovecot, mailbox="Orders") as box:
        cursor = box.cursor((await box.new_uids(after=None))[-1])
    imap.delete("Orders")  # a mailbox recreated: same name, new UIDs
    imap.create("Orders")
    imap.logout()
    fresh = dovecot.append("alice", mail("new"), mailbox="Orders")
    assert fresh <= cursor.uid  # a plain UID cursor would skip it
    async with open_box(dovecot, mailbox="Orders") as box:
        assert box.uidvalidity != cursor.uidvalidity
        assert await box.new_uids(after=cursor) == [fresh]


async def test_the_search_is_the_steps_own(dovecot: Dovecot) -> None:
    dovecot.append("alice", mail("from dave"))
    carol = dovecot.append("alice", mail("from carol", sender="carol@example.com"))
    async with open_box(dovecot) as box:
        assert await box.new_uids(after=None, search='FROM "carol@example.com"') == [carol]
        # an OR in the step's search cannot swallow the cursor's UID range
        either = 'OR FROM "carol@example.com" FROM "dave@example.com"'
        assert await box.new_uids(after=box.cursor(carol - 1), search=either) == [carol]
        with pytest.raises(PermanentError, match="SEARCH refused"):
            await box.new_uids(after=None, search="NO-SUCH-KEY")


async def test_a_wrong_password_is_a_permanent_authentication_failure(dovecot: Dovecot) -> None:
    with pytest.raises(mailbox.AuthenticationFailed, match="authentication failed") as raised:
        async with open_box(dovecot, password="wrong"):
            pass
    assert isinstance(raised.value, PermanentError)


async def test_a_missing_mailbox_is_permanent(dovecot: Dovecot) -> None:
    with pytest.raises(mailbox.MailboxMissing, match="No-Such-Box") as raised:
        async with open_box(dovecot, mailbox="No-Such-Box"):
            pass
    assert isinstance(raised.value, PermanentError)


async def test_a_stopped_server_is_a_temporary_failure(dovecot: Dovecot) -> None:
    dovecot.stop()
    with pytest.raises(mailbox.MailboxUnreachable) as raised:
        async with open_box(dovecot):
            pass
    assert isinstance(raised.value, TemporaryError)


async def test_a_restart_mid_poll_fails_the_poll_at_once_and_loses_nothing(
    dovecot: Dovecot,
) -> None:
    uids = [dovecot.append("alice", mail(f"m{n}")) for n in range(3)]
    # a long time-out: only the dropped connection can end the interrupted call soon
    async with open_box(dovecot, timeout_s=3600) as box:
        assert await box.new_uids(after=None) == uids
        await box.fetch(uids[0])
        await box.mark_seen(uids[0])  # its job committed
        await box.fetch(uids[1])  # fetched, but its job never committed
        dovecot.restart()
        with pytest.raises(mailbox.MailboxUnreachable, match="closed the connection"):
            await asyncio.wait_for(box.fetch(uids[2]), BOUND_S)
    async with open_box(dovecot) as box:
        again = await box.new_uids(after=None)
        assert again == uids[1:]
        assert await subjects(box, again) == ["m1", "m2"]


class Silent:
    """A TCP server that accepts and never speaks: an IMAP server hung at its greeting."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        try:
            while True:
                self.accepted.append(self.sock.accept()[0])
        except OSError:
            return

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent() -> Iterator[Silent]:
    server = Silent()
    try:
        yield server
    finally:
        server.close()


async def test_a_server_that_never_answers_times_out_as_temporary(silent: Silent) -> None:
    server = mailbox.Server("127.0.0.1", silent.port, "none")
    with pytest.raises(mailbox.MailboxUnreachable, match="did not answer"):
        async with mailbox.connect(server, user="a", password="b", allowed=LOCAL,
                                   timeout_s=0.5):
            pass


async def test_the_ssrf_guard_refuses_a_loopback_server_unless_allowed(dovecot: Dovecot) -> None:
    with pytest.raises(AddressRefused):
        async with open_box(dovecot, allowed=[]):
            pass


async def test_a_message_expunged_after_the_search_is_skipped(dovecot: Dovecot) -> None:
    uid = dovecot.append("alice", mail("gone"))
    async with open_box(dovecot) as box:
        assert await box.new_uids(after=None) == [uid]
        imap = dovecot.client("alice")
        imap.select("INBOX")
        imap.uid("STORE", str(uid), "+FLAGS", r"(\Deleted)")
        imap.expunge()
        imap.logout()
        assert await box.fetch(uid) is None


async def test_a_large_message_is_fetched_up_to_the_limit(
    dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = mail("big") + b"x" * 5000
    uid = dovecot.append("alice", raw)
    monkeypatch.setattr(mailbox, "MAX_MESSAGE_BYTES", 1000)
    async with open_box(dovecot) as box:
        fetched = await box.fetch(uid)
    assert fetched is not None and fetched.truncated
    assert fetched.raw == raw[:1000] and fetched.size == len(raw)
    assert message.parse_message(fetched.raw)["subject"] == "big"


# ---- TLS: STARTTLS on the plain port, implicit TLS on the other


async def test_starttls_and_implicit_tls(tls_dovecot: tuple[Dovecot, ssl.SSLContext]) -> None:
    server, context = tls_dovecot
    uid = server.append("alice", mail("secret"))
    async with open_box(server, tls="starttls", context=context) as box:
        assert await box.new_uids(after=None) == [uid]
        assert box.client.protocol.transport.get_extra_info("ssl_object") is not None
    async with open_box(server, tls="ssl", port=server.ssl_port, context=context) as box:
        assert await subjects(box, [uid]) == ["secret"]


async def test_an_untrusted_certificate_is_refused(
    tls_dovecot: tuple[Dovecot, ssl.SSLContext],
) -> None:
    server, _ = tls_dovecot
    for tls, port in (("ssl", server.ssl_port), ("starttls", server.port)):
        with pytest.raises(PermanentError, match="certificate"):
            async with open_box(server, tls=tls, port=port):  # the system's trust store
                pass


async def test_starttls_refused_when_the_server_does_not_offer_it(dovecot: Dovecot) -> None:
    with pytest.raises(PermanentError, match="does not offer STARTTLS"):
        async with open_box(dovecot, tls="starttls"):
            pass


# ---- the pure parts: the server's answers read


def test_refusals_are_classified_by_command_and_response_code() -> None:
    server = mailbox.Server("imap.example.com", 993)

    def refusal(what: str, line: bytes) -> Exception:
        return mailbox.refusal(what, server, Response("NO", [line]))

    assert isinstance(refusal("LOGIN", b"[AUTHENTICATIONFAILED] Authentication failed."),
                      mailbox.AuthenticationFailed)
    assert isinstance(refusal("LOGIN", b"[UNAVAILABLE] Temporary authentication failure."),
                      mailbox.MailboxUnreachable)
    assert isinstance(refusal("SELECT", b"Mailbox doesn't exist: X"), mailbox.MailboxMissing)
    assert isinstance(refusal("SELECT", b"[INUSE] Mailbox is locked"), TemporaryError)
    other = refusal("STORE", b"[CANNOT] read-only")
    assert isinstance(other, PermanentError) and "imap.example.com:993" in str(other)


def test_uids_past_the_floor() -> None:
    answer = Response("OK", [b"3 7 9", b"Search completed."])
    assert mailbox.uids_of(answer) == [3, 7, 9]
    assert mailbox.uids_of(Response("OK", [b"", b"Search completed."])) == []
    # UID 10:* matches the highest UID even when it is below 10
    assert mailbox.new_uids([9], floor=9) == []
    assert mailbox.floor_of(mailbox.Cursor(5, 9), uidvalidity=5) == 9
    assert mailbox.floor_of(mailbox.Cursor(4, 9), uidvalidity=5) == 0
    assert mailbox.floor_of(None, uidvalidity=5) == 0

