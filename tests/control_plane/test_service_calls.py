"""A service call as the lifecycle starts it, on the real database: the pinned version
in the publisher's account, once per calling process whatever the redeliveries, priced
on its child job; every refusal clear and unbilled; isolation both ways; a cancelled
caller cancels the call, a cancelled call wakes its caller."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import psycopg
import pytest
from cp_support import api, manual_then
from market import SERVICE, Market, market
from psycopg.rows import dict_row

from stepline import lifecycle
from stepline.errors import PermanentError


async def call(database_url: str, caller: str, payload: Any, *, name: str = SERVICE,
               key: str = "call:one", parent: lifecycle.Parent | None = None
               ) -> lifecycle.Started | lifecycle.Refusal:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        async with lifecycle.work(conn) as unit:
            return await lifecycle.start(
                unit, lifecycle.Versions(), lifecycle.ServiceTarget(name, uuid.UUID(caller)),
                payload=payload, trigger="service", idempotency_key=key, parent=parent)


def select(database_url: str, sql: str, *params: Any) -> list[dict[str, Any]]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return conn.execute(sql, params).fetchall()


async def bill(client: httpx.AsyncClient) -> dict[str, Any]:
    return (await client.get("/v1/billing")).json()


async def test_a_call_runs_the_pinned_version_for_the_publisher_once_per_caller_process(
        database_url: str) -> None:
    async with api(database_url) as platform:
        await platform.operator.patch("/v1/functions/Transform", json={"price_per_process": "0.01"})
        m = await market(platform)
        newer = await m.publisher.put(f"/v1/workflows/{m.service['workflow_id']}",
                                      json={"name": "v2", "steps": manual_then()})
        assert newer.status_code == 200, newer.text
        first = await call(database_url, m.buyer["id"], {"email": "ana@example.com"})
        again = await call(database_url, m.buyer["id"], {"email": "ana@example.com"})
        assert isinstance(first, lifecycle.Started) and isinstance(again, lifecycle.Started)
        assert (first.created, again.created, again.job_id) == (True, False, first.job_id)
        [job] = select(database_url, "SELECT * FROM jobs")
        assert (job["account_id"], job["version"], job["trigger"], job["user_id"]) == (
            uuid.UUID(m.acme["id"]), 1, "service", None)
        assert (job["caller_account_id"], job["service_id"], str(job["call_price"])) == (
            uuid.UUID(m.buyer["id"]), uuid.UUID(m.service["id"]), "0.250000")
        child = f"/v1/jobs/{first.job_id}"
        assert (await m.caller.get(child)).status_code == 404
        assert (await m.caller.get(f"{child}/processes")).status_code == 404
        assert (await m.caller.post(f"{child}/cancel")).status_code == 404
        seen = (await m.publisher.get(child)).json()
        assert (seen["caller_account_id"], seen["service_id"]) == (m.buyer["id"], m.service["id"])
        assert {p["function"] for p in (await m.publisher.get(f"{child}/processes")).json()[
            "items"]} == {"Manual", "Transform"}
        buyer_bill, acme_bill = await bill(m.caller), await bill(m.publisher)
    assert buyer_bill["lines"] == [{"function": SERVICE, "kind": "service", "count": 1,
                                    "unit_price": "0.250000", "amount": "0.250000"}]
    assert buyer_bill["total"] == "0.250000" and buyer_bill["served"] == []
    assert acme_bill["served"] == [{"service": SERVICE, "calls": 1, "unit_price": "0.250000",
                                    "revenue": "0.250000"}]
    assert acme_bill["revenue"] == "0.250000"
    assert {(line["function"], line["amount"]) for line in acme_bill["lines"]} == {
        ("Manual", "0.000000"), ("Transform", "0.010000")}


async def test_the_callers_service_step_is_billed_by_its_call_not_as_a_process(
        database_url: str) -> None:
    async with api(database_url) as platform:
        m = await market(platform)
        started = await m.caller.post(f"/v1/workflows/{m.calling['id']}/jobs",
                                      json={"payload": {"email": "ana@example.com"}})
        assert started.status_code == 201, started.text
        steps = {r["step_key"]: r["unit_price"] for r in select(
            database_url, "SELECT step_key, unit_price FROM processes WHERE job_id = %s",
            started.json()["id"])}
        lines = (await bill(m.caller))["lines"]
    assert steps == {"start": 0, "enrich": None}
    assert [line["function"] for line in lines] == ["Manual"]


@pytest.mark.parametrize("case", ["schema", "unknown", "private", "blocked", "unpublished"])
async def test_a_refused_call_says_why_and_bills_nothing(database_url: str, case: str) -> None:
    async with api(database_url) as platform:
        m = await market(platform)
        service_url = f"/v1/services/{m.service['id']}"
        payload, name = {"email": "ana@example.com"}, SERVICE
        if case == "schema":
            payload = {"mail": "ana@example.com"}
        elif case == "unknown":
            name = "Acme.nothing"
        elif case == "private":
            await m.publisher.patch(service_url, json={"visibility": "private"})
        elif case == "blocked":
            await platform.operator.post(f"/v1/accounts/{m.acme['id']}/block",
                                         json={"reason": "unpaid invoices"})
        else:
            await m.publisher.delete(service_url)
        try:
            answer: Any = await call(database_url, m.buyer["id"], payload, name=name)
        except PermanentError as exc:
            answer = exc
        buyer_bill, acme_bill = await bill(m.caller), await bill(m.publisher)
    expected = {
        "schema": "the input does not satisfy the input schema of the service Acme.enrichLead: "
                  "input: 'email' is a required property",
        "unknown": "there is no service named 'Acme.nothing'",
        "private": "the service Acme.enrichLead is private to another account",
        "blocked": "the service Acme.enrichLead cannot be called: its publisher's account is "
                   "blocked",
        "unpublished": "the service Acme.enrichLead was unpublished by its publisher",
    }[case]
    message = answer.message if isinstance(answer, lifecycle.Refusal) else str(answer)
    assert message == expected
    assert "unpaid" not in message
    assert select(database_url, "SELECT id FROM jobs WHERE service_id IS NOT NULL") == []
    assert (buyer_bill["lines"], buyer_bill["total"]) == ([], "0.000000")
    assert (acme_bill["served"], acme_bill["revenue"]) == ([], "0.000000")


async def waiting_call(database_url: str, m: Market) -> tuple[str, uuid.UUID, uuid.UUID]:
    """The caller's job, its service step's process (pending: no function server runs
    here), and the call started for it as Service.call would."""
    started = await m.caller.post(f"/v1/workflows/{m.calling['id']}/jobs",
                                  json={"payload": {"email": "ana@example.com"}})
    job_id = started.json()["id"]
    [step] = select(database_url, "SELECT id FROM processes WHERE job_id = %s AND "
                    "step_key = 'enrich'", job_id)
    child = await call(database_url, m.buyer["id"], {"email": "ana@example.com"},
                       key=f"call:{step['id']}", parent=lifecycle.Parent(step["id"], 1))
    assert isinstance(child, lifecycle.Started)
    return job_id, step["id"], child.job_id


async def test_cancelling_the_callers_job_cancels_the_call(database_url: str) -> None:
    async with api(database_url) as platform:
        m = await market(platform)
        job_id, _, child_id = await waiting_call(database_url, m)
        assert (await m.publisher.get(f"/v1/jobs/{job_id}")).status_code == 404
        cancelled = await m.caller.post(f"/v1/jobs/{job_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        child = (await m.publisher.get(f"/v1/jobs/{child_id}")).json()
    assert child["status"] == "cancelled"
    assert {r["status"] for r in select(database_url, "SELECT status FROM processes WHERE "
                                        "job_id = %s", child_id)} == {"succeeded", "cancelled"}
    assert select(database_url, "SELECT status FROM outbox WHERE job_id = %s", child_id) == [
        {"status": "cancelled"}]


async def test_a_call_cancelled_by_its_publisher_wakes_the_caller(database_url: str) -> None:
    async with api(database_url) as platform:
        m = await market(platform)
        job_id, step_id, child_id = await waiting_call(database_url, m)
        assert (await m.publisher.post(f"/v1/jobs/{child_id}/cancel")).status_code == 200
        caller_job = (await m.caller.get(f"/v1/jobs/{job_id}")).json()
    woken = select(database_url, "SELECT destination FROM outbox WHERE process_id = %s "
                   "AND status = 'pending'", step_id)
    assert caller_job["status"] == "running"
    assert [r["destination"] for r in woken] == [SERVICE, SERVICE]  # its first, and the wake-up
