"""Fixtures over this machine's real PostgreSQL (and, where a test asks, RabbitMQ).

A template database is migrated once per run (``alembic upgrade head``) and cloned per
test with ``CREATE DATABASE ... TEMPLATE``. A server that cannot be reached skips the
tests that need it locally, and fails them when ``CI=true``."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = os.environ.get(
    "STEPLINE_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is required in CI and cannot be reached")
    pytest.skip(f"{what} cannot be reached")


def db_url(name: str) -> str:
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def admin(sql: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


def migrate(url: str) -> None:
    config = Config(str(ROOT / "migrations" / "alembic.ini"))
    config.attributes["url"] = url
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")


@pytest.fixture(scope="session")
def template_db() -> Iterator[str]:
    try:
        admin("SELECT 1")
    except psycopg.OperationalError:
        unavailable("PostgreSQL at " + ADMIN_URL.split("@")[-1])
    name = f"stepline_tpl_{uuid.uuid4().hex[:8]}"
    admin(f"CREATE DATABASE {name}")
    try:
        migrate(db_url(name))
        yield name
    finally:
        admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _clone(template: str) -> Iterator[str]:
    name = f"stepline_t_{uuid.uuid4().hex[:10]}"
    admin(f"CREATE DATABASE {name} TEMPLATE {template}")
    try:
        yield db_url(name)
    finally:
        admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def database_url(template_db: str) -> Iterator[str]:
    """A fresh, migrated platform database for this test."""
    yield from _clone(template_db)


@pytest.fixture
def empty_database_url(template_db: str) -> Iterator[str]:
    """An empty database (a customer's, say) for this test."""
    yield from _clone("template0")
