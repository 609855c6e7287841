"""Servers of a test's own, to restart and stop without touching the ones this machine
shares with everybody: a PostgreSQL cluster (Debian's ``initdb`` and ``pg_ctl``, run as
the ``postgres`` user when the test runs as root) and a RabbitMQ node (its own node name,
ports, database and logs). Each lives under a temporary directory removed at the end."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from stepline_control.onemachine.children import free_port

START_TIMEOUT_S = 120.0
POSTGRES_BINARIES = "/usr/lib/postgresql/*/bin"
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def postgres_bindir() -> Path | None:
    found = sorted(glob.glob(f"{POSTGRES_BINARIES}/initdb"))
    return Path(found[-1]).parent if found else None


def rabbitmq_server() -> str | None:
    return RABBITMQ_SERVER if os.access(RABBITMQ_SERVER, os.X_OK) else shutil.which(
        "rabbitmq-server")


def wait_for_port(port: int, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listens on port {port} after {timeout_s}s")


@dataclass
class OwnPostgres:
    """One cluster on a free port, trust authentication, ``fsync`` on as shipped."""

    bindir: Path
    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="stepline-pg-")))
    port: int = field(default_factory=free_port)

    @property
    def data(self) -> Path:
        return self.base / "data"

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    @property
    def log(self) -> Path:
        return self.base / "server.log"

    def _run(self, *argv: str) -> None:
        """A binary of the cluster, as its owner: PostgreSQL refuses to run as root. Its
        output goes to a file: a server it starts keeps what it inherited open."""
        command = [str(self.bindir / argv[0]), *argv[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        with open(self.base / "pg_ctl.out", "w+") as out:
            done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT,
                                  timeout=START_TIMEOUT_S)
            out.seek(0)
            said = out.read()
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(argv)}: {said}\n{log[-2000:]}")

    def init(self) -> OwnPostgres:
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.base, owner.pw_uid, owner.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--no-sync", "-E", "UTF8")
        return self

    def start(self) -> OwnPostgres:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 "
                   f"-c unix_socket_directories={self.base} -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                  "-t", str(int(START_TIMEOUT_S)), "start")
        return self

    def restart(self, mode: str) -> None:
        """``fast``: sessions ended, a clean shutdown; ``immediate``: killed as in a crash,
        with recovery from the WAL at the next start."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-m", mode, "-w",
                  "-t", str(int(START_TIMEOUT_S)), "restart")

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.base, ignore_errors=True)


@dataclass
class OwnRabbitmq:
    """One RabbitMQ node: no plugins (the shared broker holds the management ports), its
    Erlang cookie in its own home, the default vhost and user guest/guest."""

    server: str
    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="stepline-mq-")))
    port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    name: str = field(default_factory=lambda: f"stepline-{uuid.uuid4().hex[:8]}@localhost")
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _env(self) -> dict[str, str]:
        config = self.base / "rabbitmq.conf"
        config.write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        (self.base / "enabled_plugins").write_text("[].\n")
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.base),
            "RABBITMQ_NODENAME": self.name, "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_CONFIG_FILE": str(config),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def start(self) -> OwnRabbitmq:
        with open(self.base / "node.log", "ab") as out:
            self.process = subprocess.Popen([self.server], env=self._env(), stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        """A clean stop (SIGTERM): what survives is what RabbitMQ keeps durably."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
