"""A Dovecot of a test's own: Debian's ``dovecot`` run in the foreground (``-F``) with a
config written for it — listening on 127.0.0.1 on a free port, plaintext login allowed,
users from a passwd-file, maildirs in its own directory — stopped by its PID and
restartable on the same port mid-test. With a certificate it also speaks TLS: STARTTLS
on the plain port and implicit TLS on a second one.

Its files live in a directory of its own under /tmp rather than under pytest's
``tmp_path``: Dovecot drops to its ``dovecot`` user for mail and auth, which cannot
enter pytest's 0700 directories, and its Unix sockets need a short path."""

from __future__ import annotations

import imaplib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from stepline_control.onemachine.children import free_port

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
MAIL_USER = "dovecot"
APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")


def dovecot_binary() -> str | None:
    return shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/usr/local/sbin")


def why_unusable() -> str | None:
    """Why no Dovecot can be started here, or None."""
    if dovecot_binary() is None:
        return "Dovecot (Debian's dovecot-imapd; `make dovecot` installs it)"
    if os.geteuid() != 0:
        return "Dovecot as a non-root user (its test config drops to the dovecot user)"
    try:
        pwd.getpwnam(MAIL_USER)
    except KeyError:
        return f"Dovecot's system user {MAIL_USER!r}"
    return None


def end_group(group: int) -> None:
    """SIGKILL what is left of the process group ``group`` once its master is gone (an
    orderly shutdown was the master's job); bounded, since an unreaped zombie would
    answer for ever."""
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.02)


@dataclass(frozen=True)
class Tls:
    """A certificate and key (PEM files) Dovecot serves."""

    cert: Path
    key: Path


CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
instance_name = stepline-test-{port}
listen = 127.0.0.1
protocols = imap
log_path = {root}/dovecot.log
disable_plaintext_auth = no
auth_mechanisms = plain login
# a wrong password is answered at once: the tests try one on purpose
auth_failure_delay = 0
mail_location = maildir:{root}/mail/%u
first_valid_uid = {uid}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {ssl_port}
  }}
}}
"""

SSL_ON = "ssl = yes\nssl_cert = <{cert}\nssl_key = <{key}\n"


class Dovecot:
    """One server: ``start()``, ``stop()``, ``restart()``; ``append()`` delivers mail."""

    def __init__(self, users: dict[str, str], *, tls: Tls | None = None) -> None:
        self.users = users
        self.tls = tls
        self.root = Path(tempfile.mkdtemp(prefix="stl-dovecot-"))
        self.port = free_port()
        self.ssl_port = free_port() if tls else 0
        self.process: subprocess.Popen | None = None
        self._stderr: IO[bytes] | None = None
        self._write_files()

    def _write_files(self) -> None:
        mail_user = pwd.getpwnam(MAIL_USER)
        self.root.chmod(0o711)  # Dovecot's own users must reach the users file and maildirs
        (self.root / "mail").mkdir()
        os.chown(self.root / "mail", mail_user.pw_uid, mail_user.pw_gid)
        lines = "".join(f"{user}:{{PLAIN}}{password}\n" for user, password in self.users.items())
        (self.root / "users").write_text(lines)
        (self.root / "users").chmod(0o644)
        config = CONFIG.format(
            root=self.root,
            port=self.port,
            ssl_port=self.ssl_port,
            uid=mail_user.pw_uid,
            gid=mail_user.pw_gid,
        )
        tls = SSL_ON.format(cert=self.tls.cert, key=self.tls.key) if self.tls else "ssl = no\n"
        (self.root / "dovecot.conf").write_text(config + tls)

    def start(self) -> Dovecot:
        self._stderr = open(self.root / "stderr.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [dovecot_binary() or "dovecot", "-F", "-c", str(self.root / "dovecot.conf")],
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            start_new_session=True,  # its children in a group of their own, ended with it
        )
        self._wait_for_greeting()
        return self

    def _wait_for_greeting(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"Dovecot exited at start:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"Dovecot did not greet in {START_TIMEOUT_S} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop by PID, then end what the master left behind in its process group (its
        imap processes outlive it by seconds), so clients see the drop at once."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.process is not None:
            end_group(self.process.pid)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """The end of the test: nothing left to shut down in order, the group is killed."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, chars: int = 3000) -> str:
        texts = [p.read_text(errors="replace") for p in self.root.glob("*.log") if p.is_file()]
        return "\n".join(texts)[-chars:]

    # ---- a plain client for arranging mail, the standard library's imaplib

    def client(self, user: str) -> imaplib.IMAP4:
        imap = imaplib.IMAP4("127.0.0.1", self.port, timeout=START_TIMEOUT_S)
        imap.login(user, self.users[user])
        return imap

    def append(self, user: str, raw: bytes, mailbox: str = "INBOX") -> int:
        """Deliver ``raw`` into ``mailbox``; its UID."""
        imap = self.client(user)
        try:
            status, data = imap.append(mailbox, None, None, raw)
            assert status == "OK", data
            found = APPENDUID.search(data[0])
            assert found, data
            return int(found.group(2))
        finally:
            imap.logout()

    def flags(self, user: str, uid: int, mailbox: str = "INBOX") -> bytes:
        imap = self.client(user)
        try:
            imap.select(mailbox, readonly=True)
            status, data = imap.uid("FETCH", str(uid), "(FLAGS)")
            assert status == "OK", data
            return data[0] or b""
        finally:
            imap.logout()
