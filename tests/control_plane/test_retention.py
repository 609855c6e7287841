"""Retention: old finished jobs with their processes, sent outbox rows, old inbox rows and
dead letters (resolved long enough ago, or left open for longer still) are pruned in
bounded batches; usage per day is the same before and after."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg
from cp_support import api, manual_only, manual_then, workflow

from stepline_control.services.retention import prune

AGE = timedelta(days=30)
OPEN_AGE = timedelta(days=90)


def age_everything(database_url: str, days: int) -> None:
    """Make every row ``days`` old, as if the jobs had run then."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        shift = f"interval '{days} days'"
        conn.execute(f"UPDATE jobs SET created_at = created_at - {shift}, "
                     f"finished_at = finished_at - {shift}")
        conn.execute(f"UPDATE processes SET created_at = created_at - {shift}")
        conn.execute(f"UPDATE outbox SET created_at = created_at - {shift}, "
                     f"sent_at = created_at - {shift}, status = 'sent' WHERE status = 'pending' "
                     "AND job_id IN (SELECT id FROM jobs WHERE status <> 'running')")
        conn.execute("INSERT INTO inbox (consumer, event_id, received_at) "
                     f"VALUES ('Transform', 'old', now() - {shift}), "
                     "('Transform', 'new', now())")


def last_days(days: int) -> dict[str, str]:
    today = datetime.now(UTC).date()
    return {"from": str(today - timedelta(days=days)), "to": str(today)}


def count(database_url: str, table: str) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


async def test_pruning_keeps_usage_and_running_jobs(database_url: str) -> None:
    async with api(database_url) as a:
        done = await workflow(a.operator, manual_only(), name="done")
        for _ in range(5):
            await a.operator.post(f"/v1/workflows/{done['id']}/jobs", json={})
        waiting = await workflow(a.operator, manual_then(), name="waiting")
        running = (await a.operator.post(f"/v1/workflows/{waiting['id']}/jobs", json={})).json()
        age_everything(database_url, 40)
        window = last_days(60)
        before = (await a.operator.get("/v1/usage", params=window)).json()

        pruned = await prune(a.app.state.sessions, older_than=AGE, batch=2, max_batches=10,
                             dead_letters_older_than=OPEN_AGE)

        assert (pruned.jobs, pruned.inbox) == (5, 1)
        assert count(database_url, "jobs") == 1 and count(database_url, "processes") == 2
        assert (await a.operator.get(f"/v1/jobs/{running['id']}")).json()["status"] == "running"
        assert count(database_url, "inbox") == 1
        after = (await a.operator.get("/v1/usage", params=window)).json()
        assert after["days"] == before["days"] and after["totals"] == before["totals"]
        assert after["totals"]["jobs"] == 6 and after["totals"]["processes"] == 7
        again = await prune(a.app.state.sessions, older_than=AGE, batch=2, max_batches=10,
                            dead_letters_older_than=OPEN_AGE)
        assert (again.jobs, again.outbox, again.inbox) == (0, 0, 0)


def dead_letter(database_url: str, reason: str, *, created_days: int,
                resolved_days: int | None) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO dead_letters (consumer, origin, reason, created_at, resolved_at) "
            "VALUES ('Transform', 'function', %s, now() - make_interval(days => %s), "
            "now() - make_interval(days => %s))", (reason, created_days, resolved_days))


def reasons(database_url: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        return [r[0] for r in conn.execute("SELECT reason FROM dead_letters ORDER BY reason")]


async def test_dead_letters_go_once_resolved_or_when_left_open_too_long(database_url: str
                                                                       ) -> None:
    async with api(database_url) as a:
        dead_letter(database_url, "open, recent", created_days=40, resolved_days=None)
        dead_letter(database_url, "open, too old", created_days=100, resolved_days=None)
        dead_letter(database_url, "resolved long ago", created_days=50, resolved_days=40)
        dead_letter(database_url, "resolved lately", created_days=50, resolved_days=1)

        pruned = await prune(a.app.state.sessions, older_than=AGE, batch=1, max_batches=10,
                             dead_letters_older_than=OPEN_AGE)

        assert pruned.dead_letters == 2
        assert reasons(database_url) == ["open, recent", "resolved lately"]


async def test_the_lifespan_runs_retention_periodically(database_url: str) -> None:
    async with api(database_url, retention_days=30, retention_interval_s=0.05) as a:
        flow = await workflow(a.operator, manual_only())
        await a.operator.post(f"/v1/workflows/{flow['id']}/jobs", json={})
        age_everything(database_url, 31)
        for _ in range(100):
            if count(database_url, "jobs") == 0:
                break
            await asyncio.sleep(0.05)
        assert count(database_url, "jobs") == 0
        usage = (await a.operator.get("/v1/usage", params=last_days(60))).json()
        assert usage["totals"] == {"jobs": 1, "processes": 1, "refused": 0}
