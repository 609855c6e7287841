"""The Email trigger's side of one IMAP mailbox, over aioimaplib: connect (implicit TLS,
STARTTLS or plain), log in, select the mailbox and read its UIDVALIDITY, find the
messages newer than a cursor, fetch each one's raw bytes without setting ``\\Seen``
(``BODY.PEEK[]``), and set ``\\Seen`` only when the caller asks — after the job the
message started has committed, so a crash in between leaves the message to be fetched
again (and recognised by its UIDVALIDITY + UID, or its Message-ID).

Every call has a time-out, and a connection the server drops fails the pending call at
once rather than at its time-out. Failures are the step's two outcomes: a wrong password
or a missing mailbox is permanent (retrying will not fix it); an unreachable, slow or
overloaded server is temporary. The host goes through the platform's SSRF guard and the
connection is made to the address the guard checked, TLS verifying the host's name."""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Literal, TypeVar

import aioimaplib

from stepline.sdk import Network, PermanentError, StepFailure, TemporaryError, check_url

CALL_TIMEOUT_S = 30.0
# a larger message is fetched up to here: the parser needs its headers and text, and a
# poll must not hold a 100 MB attachment in memory
MAX_MESSAGE_BYTES = 25 * 1024 * 1024
DEFAULT_MAILBOX = "INBOX"
DEFAULT_SEARCH = "UNSEEN"
# RFC 5530 response codes that say "later" rather than "never"
TEMPORARY_CODES = frozenset({"UNAVAILABLE", "INUSE", "LIMIT", "SERVERBUG"})
RESPONSE_CODE = re.compile(rb"^\[([A-Z-]+)")
UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
FETCH_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")

TlsMode = Literal["ssl", "starttls", "none"]
CLOSE_WAIT_S = 1.0
T = TypeVar("T")


class AuthenticationFailed(PermanentError):
    """The server refused the user and password."""


class MailboxMissing(PermanentError):
    """The mailbox named by the step cannot be selected."""


class MailboxUnreachable(TemporaryError):
    """The server could not be reached, did not answer in time, or asked to come back."""


@dataclass(frozen=True)
class Server:
    """Where the mailbox is: an ``imap`` connection's ``{host, port, tls}``."""

    host: str
    port: int
    tls: TlsMode = "ssl"

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Cursor:
    """How far a mailbox has been read: UIDs compare only within one UIDVALIDITY."""

    uidvalidity: int
    uid: int


@dataclass(frozen=True)
class Fetched:
    uid: int
    raw: bytes
    size: int  # the whole message's size; more than len(raw) when it was cut

    @property
    def truncated(self) -> bool:
        return self.size > len(self.raw)


def response_code(response: aioimaplib.Response) -> str | None:
    found = RESPONSE_CODE.match(response.lines[-1]) if response.lines else None
    return found.group(1).decode() if found else None


def server_text(response: aioimaplib.Response) -> str:
    last = response.lines[-1] if response.lines else b""
    return bytes(last).decode("utf-8", errors="replace")


def refusal(what: str, server: Server, response: aioimaplib.Response) -> StepFailure:
    """The error for a command the server did not answer OK."""
    message = f"{server}: {what} refused: {server_text(response)}"
    if response_code(response) in TEMPORARY_CODES:
        return MailboxUnreachable(message)
    if what == "LOGIN":
        return AuthenticationFailed(f"{server}: authentication failed: {server_text(response)}")
    if what == "SELECT":
        return MailboxMissing(message)
    return PermanentError(message)


def uids_of(response: aioimaplib.Response) -> list[int]:
    """The UIDs of an untagged SEARCH answer (every line before the tagged one)."""
    return [int(token) for line in response.lines[:-1] for token in line.split() if token.isdigit()]


def floor_of(after: Cursor | None, uidvalidity: int) -> int:
    """The last UID already read: none when the mailbox's UIDVALIDITY changed (its old
    UIDs mean nothing now)."""
    return after.uid if after is not None and after.uidvalidity == uidvalidity else 0


def new_uids(found: Sequence[int], floor: int) -> list[int]:
    """``found`` past ``floor``, in order. The filter matters: ``UID n:*`` matches the
    highest UID even when it is below n."""
    return sorted({uid for uid in found if uid > floor})


def fetched_of(uid: int, response: aioimaplib.Response) -> Fetched | None:
    """The message's bytes from a FETCH answer; None when it was expunged meanwhile."""
    raw = next((bytes(line) for line in response.lines if isinstance(line, bytearray)), None)
    if raw is None:
        return None
    sizes = [FETCH_SIZE.search(line) for line in response.lines if isinstance(line, bytes)]
    size = next((int(found.group(1)) for found in sizes if found), len(raw))
    return Fetched(uid=uid, raw=raw, size=size)


async def checked_address(server: Server, allowed: Sequence[Network]) -> str:
    """The address to connect to, after the SSRF guard. stepline.net checks URLs: the
    server is checked as the URL naming its host and port would be."""
    host = f"[{server.host}]" if ":" in server.host else server.host
    return await check_url(f"http://{host}:{server.port}/", allowed)


class _Client(aioimaplib.IMAP4):
    """aioimaplib's client connected to a checked address while TLS verifies the host's
    name, plus STARTTLS, which aioimaplib 2.0 lists but does not implement."""

    def __init__(
        self, *, address: str, server: Server, timeout_s: float, context: ssl.SSLContext,
        on_lost: asyncio.Future[None],
    ) -> None:
        self.server_name = server.host
        self.context = context

        def lost(exc: Exception | None) -> None:
            if not on_lost.done():
                on_lost.set_result(None)

        super().__init__(
            host=address, port=server.port, timeout=timeout_s, conn_lost_cb=lost,
            ssl_context=context if server.tls == "ssl" else None,
        )

    def create_client(self, host, port, loop, conn_lost_cb=None, ssl_context=None) -> None:
        running = loop or asyncio.get_running_loop()
        self.protocol = aioimaplib.IMAP4ClientProtocol(running, conn_lost_cb)
        self._client_task = running.create_task(running.create_connection(
            lambda: self.protocol, host, port, ssl=ssl_context,
            server_hostname=self.server_name if ssl_context else None,
        ))

    async def starttls(self) -> aioimaplib.Response:
        protocol = self.protocol
        response = await protocol.execute(
            aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        )
        if response.result == "OK":
            protocol.transport = await asyncio.get_running_loop().start_tls(
                protocol.transport, protocol, self.context, server_hostname=self.server_name
            )
            await protocol.capability()  # RFC 3501: what was said before TLS is void
        return response

    def abort(self) -> None:
        if not self._client_task.done():
            self._client_task.cancel()
        transport = self.protocol.transport
        if transport is not None:
            transport.close()


class Mailbox:
    """A logged-in session with one mailbox selected; made by :func:`connect`."""

    def __init__(self, client: _Client, server: Server, lost: asyncio.Future[None],
                 timeout_s: float) -> None:
        self.client = client
        self.server = server
        self.lost = lost
        self.timeout_s = timeout_s
        self.uidvalidity = 0

    async def call(self, what: str, call: Awaitable[T]) -> T:
        """``call`` under the time-out, failed at once when the server hangs up."""
        task = asyncio.ensure_future(call)
        done, _ = await asyncio.wait(
            {task, self.lost}, timeout=self.timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if task not in done:
            task.cancel()
            with suppress(asyncio.CancelledError, aioimaplib.AioImapException, OSError):
                await task
            why = "closed the connection" if self.lost.done() else (
                f"did not answer in {self.timeout_s:g} s"
            )
            raise MailboxUnreachable(f"{self.server}: {what}: the server {why}")
        try:
            return task.result()
        except ssl.SSLCertVerificationError as exc:
            raise PermanentError(f"{self.server}: TLS certificate not trusted: {exc}") from exc
        except (OSError, TimeoutError, aioimaplib.AioImapException) as exc:
            raise MailboxUnreachable(f"{self.server}: {what} failed: {exc!r}") from exc

    async def command(self, what: str, call: Awaitable[aioimaplib.Response]) -> aioimaplib.Response:
        response = await self.call(what, call)
        if response.result != "OK":
            raise refusal(what, self.server, response)
        return response

    async def open(self, *, user: str, password: str, mailbox: str) -> None:
        await self.call("connect", self.client.wait_hello_from_server())
        if self.server.tls == "starttls":
            if "STARTTLS" not in self.client.protocol.capabilities:
                raise PermanentError(f"{self.server} does not offer STARTTLS")
            await self.command("STARTTLS", self.client.starttls())
        await self.command("LOGIN", self.client.login(aioimaplib.quoted(user), password))
        selected = await self.command("SELECT", self.client.select(aioimaplib.quoted(mailbox)))
        found = next(filter(None, map(UIDVALIDITY.search, selected.lines)), None)
        if found is None:
            raise PermanentError(f"{self.server}: SELECT {mailbox!r} named no UIDVALIDITY")
        self.uidvalidity = int(found.group(1))

    async def new_uids(self, *, after: Cursor | None, search: str = DEFAULT_SEARCH) -> list[int]:
        """The UIDs matching ``search`` past the cursor, oldest first."""
        floor = floor_of(after, self.uidvalidity)
        # the user's criteria in parentheses, so an OR in them cannot swallow the UID range
        response = await self.command(
            "SEARCH", self.client.uid_search(f"({search})", "UID", f"{floor + 1}:*")
        )
        return new_uids(uids_of(response), floor)

    async def fetch(self, uid: int) -> Fetched | None:
        """The message's raw bytes; ``\\Seen`` is left as it was."""
        parts = f"(RFC822.SIZE BODY.PEEK[]<0.{MAX_MESSAGE_BYTES}>)"
        response = await self.command("FETCH", self.client.uid("fetch", str(uid), parts))
        return fetched_of(uid, response)

    async def mark_seen(self, uid: int) -> None:
        await self.command("STORE", self.client.uid("store", str(uid), "+FLAGS.SILENT", r"(\Seen)"))

    def cursor(self, uid: int) -> Cursor:
        return Cursor(uidvalidity=self.uidvalidity, uid=uid)

    async def close(self) -> None:
        # a session that never logged in has nothing to log out of, and a server hung at
        # its greeting would cost a second time-out
        logged_in = self.client.get_state() in (aioimaplib.AUTH, aioimaplib.SELECTED)
        if logged_in and not self.lost.done():
            with suppress(MailboxUnreachable, PermanentError):
                await self.call("LOGOUT", self.client.logout())
        connected = self.client.protocol.transport is not None
        self.client.abort()
        if connected:
            # the socket is closed only when the transport's connection_lost runs, a loop
            # iteration later: wait for it (briefly), so that no socket outlives the session
            with suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.lost), CLOSE_WAIT_S)


@asynccontextmanager
async def connect(
    server: Server,
    *,
    user: str,
    password: str,
    mailbox: str = DEFAULT_MAILBOX,
    allowed: Sequence[Network],
    timeout_s: float = CALL_TIMEOUT_S,
    context: ssl.SSLContext | None = None,
) -> AsyncIterator[Mailbox]:
    """A session on ``mailbox``, logged out at the end. ``context`` replaces the system's
    trust store (a private CA); ``allowed`` are the networks an operator let through."""
    address = await checked_address(server, allowed)
    lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    client = _Client(address=address, server=server, timeout_s=timeout_s,
                     context=context or ssl.create_default_context(), on_lost=lost)
    box = Mailbox(client, server, lost, timeout_s)
    try:
        await box.open(user=user, password=password, mailbox=mailbox)
        yield box
    finally:
        await box.close()
