"""Admission of a start: over the monthly quota of processes → 429, a blocked account
or workflow → 403, each refusal recorded in usage and counted in the metrics; a paused
workflow → 409."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
from cp_support import api, manual_then, workflow


def jobs_count(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT count(*) FROM jobs").fetchone()[0]


async def test_quota_reached_mid_month_refuses_with_429_and_records_it(database_url: str) -> None:
    async with api(database_url) as a:
        account, client = await a.account("metered", monthly_quota=7)
        flow = await workflow(client, manual_then())  # two processes a job
        start = f"/v1/workflows/{flow['id']}/jobs"
        # earlier this month, since pruned: 3 processes rolled up into usage
        first_of_month = datetime.now(UTC).date().replace(day=1)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("INSERT INTO usage_daily (account_id, day, jobs, processes) "
                         "VALUES (%s, %s, 1, 3)", (account["id"], first_of_month))
        assert (await client.post(start, json={})).status_code == 201  # 3 + 2 = 5
        assert (await client.post(start, json={})).status_code == 201  # 5 + 2 = 7
        refused = await client.post(start, json={})
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "quota_exceeded"
        assert "7" in refused.json()["error"]["message"]
        assert jobs_count(database_url) == 2
        assert (await client.post(start, json={})).status_code == 429

        usage = (await client.get("/v1/usage")).json()
        assert usage["totals"] == {"jobs": 3, "processes": 7, "refused": 2}
        assert usage["month_processes"] == 7 and usage["monthly_quota"] == 7
        metrics = (await a.anonymous.get("/metrics")).text
        assert 'stepline_job_starts_refused_total{reason="quota_exceeded"} 2.0' in metrics

        raised = await a.operator.patch(f"/v1/accounts/{account['id']}",
                                        json={"monthly_quota": 100})
        assert raised.json()["monthly_quota"] == 100
        assert (await client.post(start, json={})).status_code == 201
        lifted = await a.operator.patch(f"/v1/accounts/{account['id']}",
                                        json={"monthly_quota": None})
        assert lifted.json()["monthly_quota"] is None


async def test_blocked_account_and_workflow_refuse_starts_with_403_recorded(
        database_url: str) -> None:
    async with api(database_url) as a:
        account, client = await a.account("naughty")
        flow = await workflow(client, manual_then())
        start = f"/v1/workflows/{flow['id']}/jobs"

        blocked = await a.operator.post(f"/v1/accounts/{account['id']}/block",
                                        json={"reason": "unpaid invoice"})
        assert blocked.json()["blocked"] is True
        refused = await client.post(start, json={})
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "account_blocked"
        assert "unpaid invoice" in refused.json()["error"]["message"]
        # reading still works while blocked
        assert (await client.get(f"/v1/workflows/{flow['id']}")).status_code == 200
        await a.operator.post(f"/v1/accounts/{account['id']}/unblock")

        await a.operator.post(f"/v1/workflows/{flow['id']}/block", json={"reason": "abuse"})
        assert (await client.get(f"/v1/workflows/{flow['id']}")).json()["blocked"] is True
        refused = await client.post(start, json={})
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "workflow_blocked"
        await a.operator.post(f"/v1/workflows/{flow['id']}/unblock")

        await client.post(f"/v1/workflows/{flow['id']}/pause")
        paused = await client.post(start, json={})
        assert paused.status_code == 409 and paused.json()["error"]["code"] == "workflow_paused"
        await client.post(f"/v1/workflows/{flow['id']}/resume")
        assert (await client.post(start, json={})).status_code == 201

        assert jobs_count(database_url) == 1
        usage = (await client.get("/v1/usage")).json()
        assert usage["totals"]["refused"] == 2  # the two blocks; a pause is not a refusal
