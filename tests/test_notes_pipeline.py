"""The design notes' own pipeline, end to end on one machine: a CronJob tick →
RdStation.getLeads (a local fake of the API, 3 pages) → Condition (CEL on the score) →
Database.query into two tables. Every contact lands in exactly one table, once, even
when the tick is delivered twice."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from stepline_control.schedules.events import ping_event
from support import (
    LocalHttp,
    Reply,
    all_processes,
    control_plane,
    create_workflow,
    json_reply,
    platform,
    post,
    wait_for_job,
)

pytestmark = pytest.mark.slow
TOKEN = "rd-test-token"
PAGES = [
    [
        {
            "email": f"p{page}c{i}@example.com",
            "name": f"Contact {page}.{i}",
            "score": (page * 37 + i * 11) % 100,
        }
        for i in range(4)
    ]
    for page in range(3)
]


class FakeRdStation(LocalHttp):
    """RD Station Marketing's segmentation contacts endpoint, paged, Bearer-protected."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        super().__init__(self._respond)

    def _respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        url = urlsplit(path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.calls.append({"path": url.path, **query})
        if headers.get("authorization") != f"Bearer {TOKEN}":
            return json_reply(401, {"error": "unauthorized"})
        page = int(query["page"])
        return json_reply(200, {"contacts": PAGES[page - 1] if page <= len(PAGES) else []})


def steps(base: str) -> list[dict[str, Any]]:
    save = "INSERT INTO {table} (email, name, score) VALUES (:email, :name, :score)"
    return [
        {
            "key": "every5",
            "function": "CronJob",
            "output": "single",
            "next": "leads",
            "config": {
                "schedule": "*/5 * * * *",
                "timezone": "America/Sao_Paulo",
                "payload": {"segmentation_id": 42},
            },
        },
        {
            "key": "leads",
            "function": "RdStation.getLeads",
            "output": "multiple",
            "next": "hot?",
            "config": {
                "connection": "rd",
                "segmentation_id": "{{ payload.segmentation_id }}",
                "base": base,
                "page_size": 4,
            },
        },
        {
            "key": "hot?",
            "function": "Condition",
            "config": {
                "branches": [{"when": "payload.score > 50", "next": "save_hot"}],
                "default": "save_cold",
            },
        },
        {
            "key": "save_hot",
            "function": "Database.query",
            "output": None,
            "config": {"connection": "crm", "sql": save.format(table="hot_leads")},
        },
        {
            "key": "save_cold",
            "function": "Database.query",
            "output": None,
            "config": {"connection": "crm", "sql": save.format(table="cold_leads")},
        },
    ]


async def test_the_notes_pipeline_lands_every_contact_once(
    database_url: str, empty_database_url: str, tmp_path: Path
) -> None:
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        for table in ("hot_leads", "cold_leads"):
            conn.execute(f"CREATE TABLE {table} (email text PRIMARY KEY, name text, score int)")
    fake = FakeRdStation()
    functions = ["CronJob", "RdStation.getLeads", "Condition", "Database.query"]
    try:
        with platform(database_url, functions, tmp_path) as running:
            async with control_plane(database_url) as client:
                from support import postgres_connection

                await client.post("/v1/connections", json=postgres_connection(empty_database_url))
                await client.post(
                    "/v1/connections",
                    json={"name": "rd", "kind": "http", "config": {"base_url": fake.base},
                          "secret": {"token": TOKEN}},
                )
                workflow = await create_workflow(client, steps(fake.base))
                step_id = next(s["id"] for s in workflow["steps"] if s["key"] == "every5")
                cron_url = running.function_urls["CronJob"]
                scheduled = datetime(2026, 11, 22, 15, 5, tzinfo=UTC)
                ticks = [
                    ping_event(step_id, workflow["id"], scheduled, "stepline", "test")
                    for _ in range(2)
                ]  # the same scheduled minute, delivered twice
                answers = [post(cron_url, headers=h, content=b).json() for h, b in ticks]
                assert answers[0]["outcome"] == "started"
                assert answers[1] == {"outcome": "duplicate", "job_id": answers[0]["job_id"]}
                job = await wait_for_job(client, answers[0]["job_id"])
                processes = await all_processes(client, job["id"])
    finally:
        fake.close()

    contacts = [c for page in PAGES for c in page]
    assert job["status"] == "succeeded", job
    assert [c["page"] for c in fake.calls] == ["1", "2", "3", "4"]
    assert {c["page_size"] for c in fake.calls} == {"4"}
    assert {c["path"] for c in fake.calls} == {"/platform/segmentations/42/contacts"}
    with psycopg.connect(empty_database_url) as conn:
        hot = {r[0] for r in conn.execute("SELECT email FROM hot_leads")}
        cold = {r[0] for r in conn.execute("SELECT email FROM cold_leads")}
    assert hot == {c["email"] for c in contacts if c["score"] > 50}
    assert cold == {c["email"] for c in contacts if c["score"] <= 50}
    assert len(processes) == 1 + 1 + 2 * len(contacts)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM jobs").fetchone()[0] == 1
