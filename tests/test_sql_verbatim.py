"""SQL text is never templated: a version stored before the control plane refused
templates in ``sql`` fails its step permanently, and the payload that would have been
injected never reaches the database. Against a real function server and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from stepline_control.onemachine.children import url_of
from support import (
    control_plane,
    create_workflow,
    pending_event,
    post,
    postgres_connection,
    running_function,
)

INJECTED_SQL = "SELECT name FROM items WHERE id = {{ payload.id }}"


def make_items(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO items VALUES (1, 'public'), (2, 'private')")


def store_as_an_old_version_would(database_url: str, sql: str) -> None:
    """What a definition stored before the rule holds: written past the API."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE steps SET config = config || %s WHERE function = 'Database.query'",
            (Jsonb({"sql": sql}),),
        )


async def test_a_stored_template_in_sql_fails_the_step_and_injects_nothing(
    database_url: str, empty_database_url: str, tmp_path: Path
) -> None:
    make_items(empty_database_url)
    async with control_plane(database_url) as client:
        await client.post("/v1/connections", json=postgres_connection(empty_database_url))
        workflow = await create_workflow(client, [
            {"key": "start", "function": "Manual", "output": "single", "next": "read"},
            {"key": "read", "function": "Database.query", "output": None,
             "config": {"connection": "crm", "sql": "SELECT name FROM items WHERE id = :id"}},
        ])
        store_as_an_old_version_would(database_url, INJECTED_SQL)
        started = await client.post(f"/v1/workflows/{workflow['id']}/jobs",
                                    json={"payload": {"id": "0 OR true"}})
        assert started.status_code == 201, started.text
    headers, body = pending_event(database_url)
    with running_function("Database.query", database_url, tmp_path) as child:
        answer = post(url_of(child), headers=headers, content=body)
    assert answer.status_code == 200 and answer.json() == {"outcome": "failed"}
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        process = conn.execute("SELECT * FROM processes WHERE step_key = 'read'").fetchone()
    assert process["output"] is None and process["error"]["type"] == "permanent"
    assert "config.sql" in process["error"]["message"]
    assert "never templated" in process["error"]["message"]
