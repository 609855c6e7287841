"""A connection's secret: in no API response, no log line, and not in the database in
plain text — but there, sealed, for the functions to open."""

from __future__ import annotations

import logging
import uuid

import psycopg
from cp_support import api

from stepline.secrets import SecretBox
from stepline_control.logs import JsonFormatter
from support import SECRET_KEY


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def every_row_as_text(database_url: str) -> str:
    with psycopg.connect(database_url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        return "\n".join(
            str(row[0]) for table in tables
            for row in conn.execute(f"SELECT row_to_json(t)::text FROM {table} t"))


async def test_a_secret_is_never_shown_logged_or_stored_in_plain_text(database_url: str) -> None:
    password, token = f"pw-{uuid.uuid4().hex}", f"tok-{uuid.uuid4().hex}"
    lines = Lines()
    root = logging.getLogger()
    level = root.level
    root.addHandler(lines)
    root.setLevel(logging.DEBUG)
    seen: list[str] = []
    try:
        async with api(database_url) as a:
            _, client = await a.account("secretive")
            created = await client.post("/v1/connections", json={
                "name": "crm", "kind": "postgres", "secret": {"password": password},
                "config": {"host": "db.example", "dbname": "crm", "user": "crm"}})
            assert created.status_code == 201, created.text
            assert created.json()["has_secret"] is True and "secret" not in created.json()
            api_conn = await client.post("/v1/connections", json={
                "name": "api", "kind": "http", "config": {"base_url": "https://x.example"},
                "secret": {"token": token, "headers": {"X-Key": token}}})
            assert api_conn.status_code == 201
            refused = [
                await client.post("/v1/connections", json={  # same name
                    "name": "crm", "kind": "postgres", "secret": {"password": password},
                    "config": {"host": "h", "dbname": "d", "user": "u"}}),
                await client.post("/v1/connections", json={  # password in config
                    "name": "bad", "kind": "postgres",
                    "config": {"host": "h", "dbname": "d", "user": "u", "password": password}}),
                await client.post("/v1/connections", json={  # credentials as a shown header
                    "name": "bad", "kind": "http",
                    "config": {"headers": {"Authorization": f"Bearer {token}"}}}),
                await client.post("/v1/connections", json={  # unknown secret field
                    "name": "bad", "kind": "http", "secret": {"tokn": token}}),
            ]
            assert [r.status_code for r in refused] == [409, 422, 422, 422]
            seen += [r.text for r in [created, api_conn, *refused]]
            seen.append((await client.get("/v1/connections")).text)
            seen.append((await client.get(f"/v1/connections/{created.json()['id']}")).text)
            seen.append((await a.anonymous.get("/metrics")).text)
    finally:
        root.removeHandler(lines)
        root.setLevel(level)

    assert any("connection created" in line for line in lines.lines)
    for text in seen + lines.lines:
        assert password not in text and token not in text
    stored = every_row_as_text(database_url)
    assert password not in stored and token not in stored
    with psycopg.connect(database_url) as conn:
        sealed = conn.execute("SELECT secret FROM connections WHERE name = 'crm'").fetchone()[0]
    assert password.encode() not in bytes(sealed)
    assert SecretBox(SECRET_KEY).open(sealed) == {"password": password}
