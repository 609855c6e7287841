"""The schema comes only from the migrations, and they match the models."""

from __future__ import annotations

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from stepline.models import Base
from stepline.settings import sqlalchemy_url


def test_head_matches_the_models(database_url: str) -> None:
    engine = create_engine(sqlalchemy_url(database_url))
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
    engine.dispose()
    assert diff == []


def test_every_table_of_the_brief_exists(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        tables = {
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
    assert {
        "accounts",
        "api_tokens",
        "projects",
        "connections",
        "functions",
        "workflows",
        "workflow_versions",
        "steps",
        "jobs",
        "processes",
        "outbox",
        "inbox",
        "dead_letters",
        "usage_daily",
    } <= tables


def test_an_outbox_insert_notifies_once_per_statement(database_url: str) -> None:
    with (
        psycopg.connect(database_url, autocommit=True) as listener,
        psycopg.connect(database_url, autocommit=True) as writer,
    ):
        listener.execute("LISTEN stepline_outbox")
        writer.execute(
            "INSERT INTO outbox (event_id, destination, attributes, data) "
            "SELECT gen_random_uuid(), 'Transform', '{}', '{}' FROM generate_series(1, 100)"
        )
        notes = list(listener.notifies(timeout=2.0))
    assert len(notes) == 1
