"""A trigger's health as the API, the metrics and the alert see it — written only through
``stepline.lifecycle.triggers`` — and the one rule that keeps a trigger from looking
"connected" after it silently stopped: a report older than its trigger's bound reads as
failing. Pure cases on :func:`health_of`, then the API and ``/metrics`` over a real
database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from cp_support import api, workflow

from stepline.lifecycle import triggers

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def row(**changes: Any) -> dict[str, Any]:
    base = {"step_id": uuid.uuid4(), "workflow_id": uuid.uuid4(), "account_id": uuid.uuid4(),
            "function": "Queue", "config": {}, "stopped": False, "reported": True,
            "version_created_at": NOW - timedelta(days=1), "state": "connected",
            "error": None, "failing_since": None, "checked_at": NOW - timedelta(seconds=5),
            "last_event_at": None, "started": 3, "duplicates": 1, "dead_letters": 0,
            "unacked": 2}
    return {**base, **changes}


def test_a_fresh_report_is_what_it_says() -> None:
    health = triggers.health_of(row(), NOW)
    assert (health.state, health.started, health.unacked) == ("connected", 3, 2)
    failing = triggers.health_of(row(state="failing", error="ACCESS_REFUSED",
                                     failing_since=NOW - timedelta(minutes=3)), NOW)
    assert (failing.state, failing.error, failing.since) == (
        "failing", "ACCESS_REFUSED", NOW - timedelta(minutes=3))


@pytest.mark.parametrize(("function", "config", "silent_s", "state"), [
    ("Queue", {}, 119, "connected"), ("Queue", {}, 121, "failing"),
    ("Email", {"every": 60}, 239, "connected"), ("Email", {"every": 60}, 241, "failing"),
    ("Email", {"every": 300}, 959, "connected"), ("Email", {"every": 300}, 961, "failing"),
    ("Sms", {}, 10 ** 7, "connected"),  # posted to, never polls: never stale
])
def test_a_trigger_silent_past_its_bound_is_failing(function: str, config: dict[str, Any],
                                                    silent_s: int, state: str) -> None:
    health = triggers.health_of(row(function=function, config=config,
                                    checked_at=NOW - timedelta(seconds=silent_s)), NOW)
    assert health.state == state
    if state == "failing":
        assert "no report" in (health.error or "") and health.since == NOW - timedelta(
            seconds=silent_s)


def test_a_paused_trigger_is_idle_and_one_never_reported_fails_after_its_bound() -> None:
    assert triggers.health_of(row(stopped=True, state="failing"), NOW).state == "idle"
    young = row(reported=False, version_created_at=NOW - timedelta(seconds=30))
    old = row(reported=False, version_created_at=NOW - timedelta(minutes=10))
    assert triggers.health_of(young, NOW).state == "idle"
    assert triggers.health_of(old, NOW).state == "failing"
    assert triggers.health_of({**old, "function": "Sms"}, NOW).state == "idle"


async def test_health_in_the_api_and_the_metrics(database_url: str) -> None:
    steps = [{"key": "in", "function": "Queue", "output": None,
              "config": {"connection": "broker", "queue": "orders"}}]
    async with api(database_url) as a:
        _, client = await a.account("watched")
        created = await workflow(client, steps, name="orders")
        step_id = created["steps"][0]["id"]
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("UPDATE workflow_versions SET created_at = now() - interval '1 hour'")
        silent = (await client.get(f"/v1/steps/{step_id}")).json()["health"]
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            await triggers.report(conn, uuid.UUID(step_id), "failing",
                                  error="ACCESS_REFUSED - Login was refused")
            await triggers.report(conn, uuid.UUID(step_id), "failing",
                                  error="ACCESS_REFUSED - Login was refused")
        failing = (await client.get(f"/v1/steps/{step_id}")).json()["health"]
        listed = (await client.get("/v1/workflows")).json()["items"][0]["trigger_health"]
        metrics = (await a.anonymous.get("/metrics")).text
        other_client = (await a.account("other"))[1]
        hidden = await other_client.get(f"/v1/steps/{step_id}")
    assert silent["state"] == "failing" and "no consumer" in silent["error"]
    assert failing["state"] == "failing" and failing["error"].startswith("ACCESS_REFUSED")
    assert listed == failing
    assert 'stepline_triggers{function="Queue",state="failing"} 1.0' in metrics
    assert f'step_id="{step_id}"' in metrics and "stepline_trigger_failing_seconds{" in metrics
    assert hidden.status_code == 404
