"""Services end to end on real function servers and the relay: one account's workflow
calls another account's service, continues with its result, is billed per call (and
only once, whatever is delivered again), never sees inside the call; a call the
service refuses fails the caller's step and bills nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from cloudevents.core.bindings.http import to_binary_event
from control_plane.cp_support import api
from market import SERVICE, market
from psycopg.rows import dict_row

from stepline.packet import to_cloudevent
from support import all_processes, platform, post, wait_for_job

pytestmark = pytest.mark.slow
FUNCTIONS = ["Service.call", "Transform"]


async def run(client: httpx.AsyncClient, workflow_id: str, payload: Any) -> dict[str, Any]:
    started = await client.post(f"/v1/workflows/{workflow_id}/jobs", json={"payload": payload})
    assert started.status_code == 201, started.text
    return await wait_for_job(client, started.json()["id"])


def deliveries_of(database_url: str, process_id: str) -> list[dict[str, Any]]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return conn.execute("SELECT attributes, data FROM outbox WHERE process_id = %s "
                            "ORDER BY id", (process_id,)).fetchall()


def deliver_again(url: str, row: dict[str, Any], **change: str) -> dict[str, Any]:
    """The outbox row's CloudEvent posted to the function once more, as a redelivery."""
    message = to_binary_event(to_cloudevent({**row["attributes"], **change}, row["data"]))
    response = post(url, headers=message.headers, content=message.body)
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_workflow_runs_on_another_accounts_service_and_pays_per_call(
        database_url: str, tmp_path: Path) -> None:
    with platform(database_url, FUNCTIONS, tmp_path) as running:
        async with api(database_url) as control:
            await control.operator.patch("/v1/functions/Transform",
                                         json={"price_per_process": "0.001"})
            m = await market(control)
            await run(m.caller, m.calling["id"], {"email": "ana@example.com"})
            job = await run(m.caller, m.calling["id"], {"email": "bo@example.com"})
            steps = {p["step_key"]: p for p in await all_processes(m.caller, job["id"])}
            children = (await m.publisher.get("/v1/jobs")).json()["items"]
            hidden = [(await m.caller.get(f"/v1/jobs/{c['id']}")).status_code for c in children]
            before = (await m.caller.get("/v1/billing")).json()
            url = running.function_urls["Service.call"]
            first, *_ = deliveries_of(database_url, steps["enrich"]["id"])
            again = deliver_again(url, first)
            fresh = deliver_again(url, first, id="00000000-0000-4000-8000-000000000001")
            after, served = ((await m.caller.get("/v1/billing")).json(),
                             (await m.publisher.get("/v1/billing")).json())
    assert job["status"] == "succeeded", job
    result = {"lead": "bo@example.com", "score": 14}
    assert steps["enrich"]["output"] == result
    assert steps["after"]["output"] == {"enriched": result}
    assert steps["enrich"]["input"] == {"email": "bo@example.com"}
    assert all(c["caller_account_id"] == m.buyer["id"] and c["status"] == "succeeded"
               for c in children) and len(children) == 2
    assert hidden == [404, 404]
    assert (again, fresh) == ({"outcome": "duplicate"}, {"outcome": "duplicate"})
    assert after == before
    assert after["lines"] == [
        {"function": SERVICE, "kind": "service", "count": 2, "unit_price": "0.250000",
         "amount": "0.500000"},
        {"function": "Manual", "kind": "trigger", "count": 2, "unit_price": "0.000000",
         "amount": "0.000000"},
        {"function": "Transform", "kind": "action", "count": 2, "unit_price": "0.001000",
         "amount": "0.002000"},
    ]
    assert after["total"] == "0.502000"
    assert served["served"] == [{"service": SERVICE, "calls": 2, "unit_price": "0.250000",
                                 "revenue": "0.500000"}]
    assert served["total"] == "0.002000" and served["revenue"] == "0.500000"


async def test_a_call_the_service_refuses_fails_the_callers_step_and_bills_nothing(
        database_url: str, tmp_path: Path) -> None:
    with platform(database_url, FUNCTIONS, tmp_path):
        async with api(database_url) as control:
            m = await market(control)
            job = await run(m.caller, m.calling["id"], {"mail": "ana@example.com"})
            steps = {p["step_key"]: p for p in await all_processes(m.caller, job["id"])}
            bill = (await m.caller.get("/v1/billing")).json()
            served = (await m.publisher.get("/v1/billing")).json()["served"]
    assert job["status"] == "failed"
    assert steps["enrich"]["status"] == "failed" and "after" not in steps
    assert steps["enrich"]["error"]["message"] == (
        "the input does not satisfy the input schema of the service Acme.enrichLead: "
        "input: 'email' is a required property")
    assert [line["function"] for line in bill["lines"]] == ["Manual"] and served == []
