"""A Manual step's ``config.form``: a JSON Schema of the payload. A start whose payload
fails it is a 422 naming each field, and starts (and counts) nothing; a form that is no
JSON Schema is a definition problem naming ``config.form``."""

from __future__ import annotations

from typing import Any

import psycopg
from cp_support import api, workflow

FORM = {"type": "object", "required": ["email", "quantity"],
        "properties": {"email": {"type": "string", "title": "E-mail"},
                       "quantity": {"type": "integer", "minimum": 1},
                       "notes": {"type": "string", "maxLength": 20}}}


def form_steps(form: Any = FORM) -> list[dict[str, Any]]:
    return [{"key": "ask", "function": "Manual", "config": {"form": form}, "output": None}]


async def test_a_payload_that_fails_the_form_is_a_422_naming_each_field(
        database_url: str) -> None:
    async with api(database_url) as a:
        _, client = await a.account("forms")
        created = await workflow(client, form_steps())
        jobs = f"/v1/workflows/{created['id']}/jobs"
        refused = await client.post(jobs, json={"payload": {"quantity": 0, "notes": "x" * 30}})
        not_an_object = await client.post(jobs, json={"payload": [1]})
        accepted = await client.post(jobs, json={"payload": {"email": "a@b.c", "quantity": 2}})
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "invalid_payload"
    assert [d["field"] for d in error["details"]] == ["payload.email", "payload.notes",
                                                      "payload.quantity"]
    assert not_an_object.status_code == 422
    assert not_an_object.json()["error"]["details"][0]["field"] == "payload"
    assert accepted.status_code == 201, accepted.text
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM jobs").fetchone()[0] == 1
        assert conn.execute("SELECT coalesce(sum(refused), 0) FROM usage_daily"
                            ).fetchone()[0] == 0


async def test_a_form_that_is_no_json_schema_is_a_definition_problem(database_url: str) -> None:
    async with api(database_url) as a:
        _, client = await a.account("forms")
        project = (await client.post("/v1/projects", json={"name": "p"})).json()["id"]
        response = await client.post("/v1/workflows", json={
            "project_id": project, "name": "w", "steps": form_steps({"type": "nonsense"})})
    assert response.status_code == 422
    details = response.json()["error"]["details"]
    # named where in the form the schema is wrong
    assert any(d["step"] == "ask" and d["field"] == "config.form.type" for d in details), details
