"""The bill: every process priced when it is written (a later change of price makes a
new line, never rewrites an old one), exact decimal amounts in JSON and CSV, a month at a
time, one's own account only, and the same after retention pruned the rows."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import psycopg
from cp_support import api, manual_then, workflow

from stepline_control.services.retention import prune


async def price(operator: httpx.AsyncClient, function: str, amount: str) -> None:
    response = await operator.patch(f"/v1/functions/{function}",
                                    json={"price_per_process": amount})
    assert response.status_code == 200, response.text


async def run(client: httpx.AsyncClient, workflow_id: str, times: int) -> None:
    for _ in range(times):
        response = await client.post(f"/v1/workflows/{workflow_id}/jobs", json={"payload": {}})
        assert response.status_code == 201, response.text


def this_month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


async def test_each_process_is_billed_at_the_price_it_was_created_with(
        database_url: str) -> None:
    async with api(database_url) as platform:
        account, client = await platform.account("Buyer")
        flow = await workflow(client, manual_then())
        await price(platform.operator, "Manual", "0.0001")
        await price(platform.operator, "Transform", "0.002")
        await run(client, flow["id"], 3)
        await price(platform.operator, "Transform", "0.01")
        await run(client, flow["id"], 1)
        bill = (await client.get("/v1/billing", params={"month": this_month()})).json()
    assert bill == {
        "account_id": account["id"], "month": this_month(), "currency": "USD",
        "lines": [
            {"function": "Manual", "kind": "trigger", "count": 4,
             "unit_price": "0.000100", "amount": "0.000400"},
            {"function": "Transform", "kind": "action", "count": 3,
             "unit_price": "0.002000", "amount": "0.006000"},
            {"function": "Transform", "kind": "action", "count": 1,
             "unit_price": "0.010000", "amount": "0.010000"},
        ],
        "total": "0.016400", "served": [], "revenue": "0.000000",
    }


async def test_the_lines_download_as_csv(database_url: str) -> None:
    async with api(database_url) as platform:
        _, client = await platform.account("Buyer")
        flow = await workflow(client, manual_then())
        await price(platform.operator, "Transform", "1.5")
        await run(client, flow["id"], 2)
        response = await client.get("/v1/billing", params={"format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert (response.headers["content-disposition"]
            == f'attachment; filename="stepline-billing-{this_month()}.csv"')
    lines = list(csv.DictReader(io.StringIO(response.text)))
    assert lines == [
        {"function": "Manual", "kind": "trigger", "count": "2", "unit_price": "0.000000",
         "amount": "0.000000"},
        {"function": "Transform", "kind": "action", "count": "2", "unit_price": "1.500000",
         "amount": "3.000000"},
    ]


async def test_a_month_is_named_right_and_an_account_reads_its_own(database_url: str) -> None:
    async with api(database_url) as platform:
        buyer, client = await platform.account("Buyer")
        _, other = await platform.account("Other")
        await run(client, (await workflow(client, manual_then()))["id"], 1)
        bad = await client.get("/v1/billing", params={"month": "2026-13"})
        empty = (await client.get("/v1/billing", params={"month": "1999-01"})).json()
        foreign = await other.get("/v1/billing", params={"account_id": buyer["id"]})
        operator = await platform.operator.get("/v1/billing", params={"account_id": buyer["id"]})
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"] == "query.month"
    assert (empty["lines"], empty["total"], empty["month"]) == ([], "0.000000", "1999-01")
    assert foreign.status_code == 404
    assert [line["count"] for line in operator.json()["lines"]] == [1, 1]


async def test_retention_keeps_the_bill(database_url: str) -> None:
    async with api(database_url) as platform:
        _, client = await platform.account("Buyer")
        await price(platform.operator, "Transform", "0.123456")
        await run(client, (await workflow(client, manual_then()))["id"], 4)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("UPDATE processes SET status = 'succeeded', "
                         "created_at = created_at - interval '40 days'")
            conn.execute("UPDATE jobs SET status = 'succeeded', finished_at = now() - interval "
                         "'40 days', created_at = created_at - interval '40 days'")
        month = (datetime.now(UTC) - timedelta(days=40)).strftime("%Y-%m")
        before = (await client.get("/v1/billing", params={"month": month})).json()
        pruned = await prune(platform.app.state.sessions, older_than=timedelta(days=30),
                             batch=3, max_batches=10,
                             dead_letters_older_than=timedelta(days=90))
        after = (await client.get("/v1/billing", params={"month": month})).json()
    assert pruned.jobs == 4
    assert Decimal(before["total"]) == Decimal("0.493824") and after == before
