"""The stuck-job watchdog: a running job with outstanding work and no progress for
longer than the bound is recorded as stuck with the process it waits for and that
process's last error, shown in the API and the metrics, and cleared once the job moves
or ends. Waiting is not being stuck: a retry scheduled for later, a parent whose child
job is progressing.

Rows are written as a function, the relay or a crash would leave them, then aged: no
test sleeps out the bound."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from cp_support import Api, api, manual_then, workflow

from stepline.lifecycle import finish, redeliver
from stepline_control.services import stuck
from stepline_control.sessions import driver_connection

BOUND_S = 600.0  # ten minutes; rows are aged by an hour
AGED = "interval '1 hour'"
DEAD = '{"type": "temporary", "message": "HTTP 502 from the CRM", "attempt": 1}'


def sql(database_url: str, statement: str, *params: Any) -> list[tuple]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def age(database_url: str, job_id: str) -> None:
    """Every moment of the job an hour earlier, as if it had all happened then."""
    sql(database_url, f"UPDATE jobs SET created_at = created_at - {AGED} WHERE id = %s", job_id)
    sql(database_url, f"UPDATE processes SET created_at = created_at - {AGED}, "
        f"started_at = started_at - {AGED}, finished_at = finished_at - {AGED} "
        "WHERE job_id = %s", job_id)
    sql(database_url, f"UPDATE outbox SET created_at = created_at - {AGED}, "
        f"not_before = not_before - {AGED}, sent_at = sent_at - {AGED} WHERE job_id = %s",
        job_id)


def died_while_running(database_url: str, job_id: str) -> str:
    """The relay delivered the retry of a process that had failed once; the function
    began it and died before it recorded anything."""
    return str(sql(database_url,
                   "UPDATE processes SET status = 'running', attempt = 2, started_at = now(), "
                   "error = %s::jsonb WHERE job_id = %s AND status = 'pending' RETURNING id",
                   DEAD, job_id)[0][0])


def delivered(database_url: str, job_id: str) -> None:
    sql(database_url, "UPDATE outbox SET status = 'sent', sent_at = now() "
        "WHERE job_id = %s AND status = 'pending'", job_id)


async def start(client: httpx.AsyncClient, steps: list[dict] | None = None) -> dict[str, Any]:
    flow = await workflow(client, steps or manual_then(), name=f"flow {uuid.uuid4().hex[:6]}")
    response = await client.post(f"/v1/workflows/{flow['id']}/jobs", json={"payload": {"n": 1}})
    assert response.status_code == 201, response.text
    return response.json()


async def check(a: Api) -> stuck.CheckResult:
    return await stuck.check(a.app.state.sessions, after_s=BOUND_S, metrics=a.app.state.metrics)


async def scrape(a: Api) -> dict[str, float]:
    """The samples of the two stuck-job metrics."""
    lines = (await a.anonymous.get("/metrics")).text.splitlines()
    samples = dict(line.rsplit(" ", 1) for line in lines if not line.startswith("#"))
    return {name: float(samples[name])
            for name in ("stepline_jobs_stuck", "stepline_jobs_stuck_detected_total")}


def ids(jobs: list[stuck.StuckJob]) -> set[str]:
    return {str(job.job_id) for job in jobs}


async def test_a_job_whose_function_died_is_reported_with_its_process_and_last_error(
        database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    async with api(database_url) as a:
        account_a, alice = await a.account("alice")
        account_b, bob = await a.account("bob")
        job = await start(alice)
        process_id = died_while_running(database_url, job["id"])
        delivered(database_url, job["id"])
        assert (await check(a)).stuck == []  # it is only a moment old
        age(database_url, job["id"])

        with caplog.at_level(logging.WARNING, logger=stuck.__name__):
            found = await check(a)
            again = await check(a)
        assert ids(found.newly) == {job["id"]}
        assert again.newly == [] and ids(again.stuck) == {job["id"]}
        warnings = [r for r in caplog.records if r.name == stuck.__name__]
        assert len(warnings) == 1 and warnings[0].job_id == job["id"]

        body = (await alice.get(f"/v1/jobs/{job['id']}")).json()
        reason = body["stuck"]
        assert reason["process"]["id"] == process_id
        assert reason["process"]["step_key"] == "work"
        assert reason["process"]["function"] == "Transform"
        assert reason["process"]["status"] == "running" and reason["process"]["attempt"] == 2
        assert reason["waiting_on"] == "function" and reason["outstanding_processes"] == 1
        assert reason["last_error"] == "HTTP 502 from the CRM"
        assert reason["error_source"] == "process"
        assert "never finished" in reason["message"]
        assert datetime.fromisoformat(reason["since"]) < datetime.now(UTC) - timedelta(minutes=50)

        listed = (await alice.get("/v1/jobs", params={"stuck": "true"})).json()["items"]
        assert [j["id"] for j in listed] == [job["id"]]
        assert (await alice.get("/v1/jobs", params={"stuck": "false"})).json()["items"] == []
        # another account sees nothing of it; an operator sees every account's
        assert (await bob.get(f"/v1/jobs/{job['id']}")).status_code == 404
        assert (await bob.get("/v1/jobs", params={"stuck": "true"})).json()["items"] == []
        everyone = (await a.operator.get("/v1/jobs", params={"stuck": "true"})).json()["items"]
        assert [j["id"] for j in everyone] == [job["id"]]
        assert everyone[0]["account_id"] == account_a["id"]
        for who, account, expected in ((a.operator, account_b, []), (bob, account_a, []),
                                       (a.operator, account_a, [job["id"]])):
            page = await who.get("/v1/jobs", params={"stuck": "true", "account_id": account["id"]})
            assert [j["id"] for j in page.json()["items"]] == expected
        assert (await a.operator.get(f"/v1/jobs/{job['id']}")).json()["stuck"] == reason

        assert await scrape(a) == {"stepline_jobs_stuck": 1.0,
                                   "stepline_jobs_stuck_detected_total": 1.0}


async def test_an_undelivered_message_is_stuck_with_the_relays_error(database_url: str) -> None:
    async with api(database_url) as a:
        job = await start(a.operator)  # no relay runs: its message is never delivered
        sql(database_url, "UPDATE outbox SET attempts = 3, last_error = 'POST http://transform: "
            "ConnectError' WHERE job_id = %s", job["id"])
        age(database_url, job["id"])
        await check(a)
        reason = (await a.operator.get(f"/v1/jobs/{job['id']}")).json()["stuck"]
        assert reason["waiting_on"] == "delivery" and reason["error_source"] == "outbox"
        assert reason["last_error"] == "POST http://transform: ConnectError"
        assert reason["process"]["status"] == "pending"


async def test_a_retry_scheduled_for_later_is_waiting_not_stuck(database_url: str) -> None:
    async with api(database_url) as a:
        job = await start(a.operator)
        # attempt 1 failed an hour ago and its retry was put off for two hours
        sql(database_url, "UPDATE processes SET status = 'pending', attempt = 1, error = %s::jsonb "
            "WHERE job_id = %s AND status = 'pending'", DEAD, job["id"])
        age(database_url, job["id"])
        sql(database_url, "UPDATE outbox SET not_before = now() + interval '1 hour' "
            "WHERE job_id = %s", job["id"])
        assert (await check(a)).stuck == []
        assert (await a.operator.get(f"/v1/jobs/{job['id']}")).json()["stuck"] is None

        # due, and since then no one delivered it: stuck from the moment it fell due
        sql(database_url, "UPDATE outbox SET not_before = now() - interval '20 minutes' "
            "WHERE job_id = %s", job["id"])
        found = await check(a)
        assert len(found.newly) == 1
        since = found.newly[0].since
        assert timedelta(minutes=19) < datetime.now(UTC) - since < timedelta(minutes=30)
        assert found.newly[0].reason["last_error"] == "HTTP 502 from the CRM"


async def test_a_progressing_job_is_not_stuck(database_url: str) -> None:
    steps = [{"key": "start", "function": "Manual", "output": "multiple", "next": "work"},
             {"key": "work", "function": "Transform", "config": {"expression": "@"},
              "output": None, "next": None}]
    async with api(database_url) as a:
        flow = await workflow(a.operator, steps)
        response = await a.operator.post(f"/v1/workflows/{flow['id']}/jobs",
                                         json={"payload": [1, 2]})
        job = response.json()
        age(database_url, job["id"])
        # one branch hangs for an hour, the other has just finished: the job moves
        sql(database_url, "UPDATE processes SET status = 'succeeded', finished_at = now() "
            "WHERE id = (SELECT id FROM processes WHERE job_id = %s AND status = 'pending' "
            "LIMIT 1)", job["id"])
        assert (await check(a)).stuck == []
        assert (await scrape(a))["stepline_jobs_stuck"] == 0.0


async def test_stuck_is_cleared_when_the_job_moves_and_when_it_ends(database_url: str) -> None:
    async with api(database_url) as a:
        job = await start(a.operator)
        died_while_running(database_url, job["id"])
        delivered(database_url, job["id"])
        age(database_url, job["id"])
        assert len((await check(a)).newly) == 1

        # someone delivers the process again: it moves, and the next check says so
        process_id = sql(database_url, "SELECT id FROM processes WHERE job_id = %s "
                         "AND status = 'running'", job["id"])[0][0]
        async with a.app.state.sessions() as session:
            assert await redeliver(await driver_connection(session), process_id)
            await session.commit()
        cleared = await check(a)
        assert cleared.stuck == [] and [str(i) for i in cleared.cleared] == [job["id"]]
        assert (await a.operator.get(f"/v1/jobs/{job['id']}")).json()["stuck"] is None

        # stuck again, then it ends: not stuck at once, and its record cleared by the check
        age(database_url, job["id"])
        assert len((await check(a)).newly) == 1
        sql(database_url, "UPDATE processes SET status = 'succeeded', finished_at = now() "
            "WHERE job_id = %s", job["id"])
        async with a.app.state.sessions() as session:
            assert await finish(await driver_connection(session), uuid.UUID(job["id"])) \
                == "succeeded"
            await session.commit()
        assert (await a.operator.get(f"/v1/jobs/{job['id']}")).json()["stuck"] is None
        assert (await a.operator.get("/v1/jobs", params={"stuck": "true"})).json()["items"] == []
        assert (await scrape(a))["stepline_jobs_stuck"] == 0.0
        await check(a)
        assert sql(database_url, "SELECT stuck_since, stuck_reason FROM jobs") == [(None, None)]
        assert (await scrape(a))["stepline_jobs_stuck_detected_total"] == 2.0


async def test_a_parent_is_as_alive_as_the_child_job_it_waits_for(database_url: str) -> None:
    async with api(database_url) as a:
        child_flow = await workflow(a.operator, manual_then(), name="child")
        parent = await start(a.operator, manual_then(
            "Workflow.call", {"workflow_id": child_flow["id"]}))
        waiting = died_while_running(database_url, parent["id"])  # began, answered "waiting"
        delivered(database_url, parent["id"])
        child = (await a.operator.post(f"/v1/workflows/{child_flow['id']}/jobs",
                                       json={})).json()
        sql(database_url, "UPDATE jobs SET parent_process_id = %s WHERE id = %s",
            waiting, child["id"])
        age(database_url, parent["id"])
        assert (await check(a)).stuck == []  # the child has just started

        age(database_url, child["id"])
        found = {str(j.job_id): j for j in (await check(a)).stuck}
        assert set(found) == {parent["id"], child["id"]}
        reason = found[parent["id"]].reason
        assert reason["waiting_on"] == "child_job" and reason["child_job_id"] == child["id"]
        assert reason["process"]["function"] == "Workflow.call"
        assert found[child["id"]].reason["waiting_on"] == "delivery"
        assert found[parent["id"]].since == found[child["id"]].since  # the child's, later


def test_a_quiet_parent_is_stuck_only_when_its_whole_line_of_children_is() -> None:
    now = datetime.now(UTC)
    parent, child, grandchild = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    links = {parent: [child], child: [grandchild]}
    quiet = {parent: now - timedelta(hours=3), child: now - timedelta(hours=2)}
    assert stuck.resolve(quiet, links) == {}  # the grandchild is progressing
    quiet[grandchild] = now - timedelta(hours=1)
    assert stuck.resolve(quiet, links) == {
        parent: now - timedelta(hours=1), child: now - timedelta(hours=1),
        grandchild: now - timedelta(hours=1)}


async def test_the_lifespan_runs_the_watchdog_with_the_configured_bound(
        database_url: str) -> None:
    async with api(database_url, stuck_after_s=0.2, stuck_check_interval_s=0.05) as a:
        job = await start(a.operator)  # no function and no relay run in this test
        for _ in range(200):
            body = (await a.operator.get(f"/v1/jobs/{job['id']}")).json()
            if body["stuck"]:
                break
            await asyncio.sleep(0.05)
        assert body["stuck"]["waiting_on"] == "delivery"
        assert (await scrape(a))["stepline_jobs_stuck_detected_total"] == 1.0
