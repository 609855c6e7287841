"""The Webhook function, called directly as Knative exposes it: a CloudEvent or plain
JSON starts a job; the same CloudEvent id twice starts one; the token and the payload
schema are enforced."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from cloudevents.core.bindings.http import to_binary_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent

from stepline_control.onemachine.children import Child, url_of
from support import control_plane, create_workflow, post, running_function

SECRET = "hook-secret"
SCHEMA = {"type": "object", "required": ["order"], "properties": {"order": {"type": "integer"}}}


@pytest.fixture
def webhook(database_url: str, tmp_path: Path) -> Iterator[Child]:
    with running_function("Webhook", database_url, tmp_path) as child:
        yield child


async def hook_url(database_url: str, child: Child) -> str:
    steps = [
        {
            "key": "hook",
            "function": "Webhook",
            "output": None,
            "config": {
                "payload_schema": SCHEMA,
                "token_sha256": hashlib.sha256(SECRET.encode()).hexdigest(),
            },
        }
    ]
    async with control_plane(database_url) as client:
        workflow = await create_workflow(client, steps)
    return url_of(child) + workflow["steps"][0]["id"]


def event(event_id: str, data: dict) -> CloudEvent:
    return CloudEvent(
        attributes={
            "specversion": "1.0",
            "id": event_id,
            "type": "shop.order",
            "source": "/shop",
            "datacontenttype": "application/json",
        },
        data=data,
    )


def jobs(database_url: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT id, status, payload FROM jobs ORDER BY created_at").fetchall()


AUTH = {"Authorization": f"Bearer {SECRET}"}


async def test_the_same_cloudevent_twice_starts_one_job(database_url: str, webhook: Child) -> None:
    url = await hook_url(database_url, webhook)
    message = to_binary_event(event("order-1", {"order": 1}))
    first = post(url, headers={**message.headers, **AUTH}, content=message.body)
    again = post(url, headers={**message.headers, **AUTH}, content=message.body)
    assert first.status_code == 202 and first.json()["outcome"] == "started"
    assert again.status_code == 202
    assert again.json() == {"outcome": "duplicate", "job_id": first.json()["job_id"]}
    structured = to_structured_event(event("order-2", {"order": 2}))
    third = post(url, headers={**structured.headers, **AUTH}, content=structured.body)
    assert third.status_code == 202
    found = jobs(database_url)
    assert [(str(j[0]), j[1], j[2]) for j in found] == [
        (first.json()["job_id"], "succeeded", {"order": 1}),
        (third.json()["job_id"], "succeeded", {"order": 2}),
    ]


async def test_plain_json_with_an_idempotency_key(database_url: str, webhook: Child) -> None:
    url = await hook_url(database_url, webhook)
    headers = {**AUTH, "Idempotency-Key": "abc"}
    first = post(url, headers=headers, json={"order": 7})
    second = post(url, headers=headers, json={"order": 7})
    assert first.status_code == second.status_code == 202
    assert second.json()["job_id"] == first.json()["job_id"]
    assert post(url, headers=AUTH, json={"order": 8}).status_code == 202
    assert len(jobs(database_url)) == 2


async def test_the_token_and_the_schema_are_enforced(database_url: str, webhook: Child) -> None:
    url = await hook_url(database_url, webhook)
    assert post(url, json={"order": 1}).status_code == 401
    assert post(url, headers={"Authorization": "Bearer nope"}, json={"order": 1}).status_code == 401
    bad = post(url, headers=AUTH, json={"order": "one"})
    assert bad.status_code == 422
    assert bad.json()["error"]["problems"] == [
        {"field": "payload.order", "message": "'one' is not of type 'integer'"}
    ]
    assert post(url, headers=AUTH, content=b"{not json").status_code == 400
    unknown = url_of(webhook) + str(uuid.uuid4())
    assert post(unknown, headers=AUTH, json={"order": 1}).status_code == 422
    assert jobs(database_url) == []


async def test_an_account_over_its_quota_is_skipped_and_counted(
    database_url: str, webhook: Child
) -> None:
    url = await hook_url(database_url, webhook)
    assert post(url, headers=AUTH, json={"order": 1}).status_code == 202  # 1 process
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE accounts SET monthly_quota = 1")
    skipped = post(url, headers=AUTH, json={"order": 2})
    assert skipped.status_code == 200
    assert skipped.json() == {"outcome": "skipped",
                              "reason": "the account reached its monthly quota of 1 processes"}
    with psycopg.connect(database_url) as conn:
        refused = conn.execute("SELECT day, refused FROM usage_daily").fetchall()
        utc_today = conn.execute("SELECT (now() AT TIME ZONE 'UTC')::date").fetchone()[0]
    assert refused == [(utc_today, 1)]
    assert len(jobs(database_url)) == 1
