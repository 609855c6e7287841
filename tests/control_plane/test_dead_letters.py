"""The dead letters of an account through the API: listed newest first with filters
(function, resolved, job) and pages, inspected (reason, headers, body), and retried —
a failed process runs again exactly as ``POST /v1/processes/{id}/retry`` runs it and its
dead letter is resolved; a malformed event has nothing to retry (409). Another account's
dead letters are 404; an operator reads every account's."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import psycopg
from cp_support import api, manual_then, workflow

from stepline import lifecycle
from stepline.deadletter_limits import BODY_MAX_BYTES


async def keep(database_url: str, **fields: Any) -> None:
    """A dead letter, written by the runtime's one writer."""
    values = {"consumer": "Transform", "event_id": None, "account_id": None, "job_id": None,
              "process_id": None, "origin": "function", "reason": "boom",
              "headers": {"ce-type": "stepline.step"}, "body": '{"payload": 1}', **fields}
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await lifecycle.keep(conn, lifecycle.DeadLetter(**values))


async def failed_job(client: httpx.AsyncClient, database_url: str, account_id: str
                     ) -> tuple[str, str]:
    """A job whose action process failed as a function records it: the process failed,
    the job failed, a dead letter with the reason. Returns (job id, process id)."""
    flow = await workflow(client, manual_then(), name=f"flow {uuid.uuid4().hex[:6]}")
    job = (await client.post(f"/v1/workflows/{flow['id']}/jobs", json={"payload": {}})).json()
    with psycopg.connect(database_url, autocommit=True) as conn:
        process_id = conn.execute(
            "UPDATE processes SET status = 'failed', finished_at = now(), "
            "error = '{\"type\": \"permanent\", \"message\": \"boom\"}' "
            "WHERE job_id = %s AND step_key = 'work' RETURNING id", (job["id"],)).fetchone()[0]
        conn.execute("UPDATE jobs SET status = 'failed', finished_at = now() WHERE id = %s",
                     (job["id"],))
    await keep(database_url, account_id=uuid.UUID(account_id), job_id=uuid.UUID(job["id"]),
               process_id=process_id, event_id=f"ev-{process_id}")
    return job["id"], str(process_id)


async def test_list_filters_pages_and_inspects(database_url: str) -> None:
    async with api(database_url) as a:
        account, admin = await a.account("shop")
        job_id, process_id = await failed_job(admin, database_url, account["id"])
        await keep(database_url, account_id=uuid.UUID(account["id"]), consumer="Webhook",
                   origin="api", reason="the body is not JSON", body="{x" + "y" * 70_000,
                   headers={"content-type": "application/json"})

        page = (await admin.get("/v1/dead-letters", params={"limit": 1})).json()
        assert [d["consumer"] for d in page["items"]] == ["Webhook"]  # newest first
        rest = (await admin.get("/v1/dead-letters", params={"cursor": page["next_cursor"]}))
        assert [d["process_id"] for d in rest.json()["items"]] == [process_id]
        assert "body" not in page["items"][0]  # the list stays light; inspect for the body

        by_job = (await admin.get("/v1/dead-letters", params={"job_id": job_id})).json()
        assert [d["job_id"] for d in by_job["items"]] == [job_id]
        webhook = (await admin.get("/v1/dead-letters", params={"consumer": "Webhook"})).json()
        dead = (await admin.get(f"/v1/dead-letters/{webhook['items'][0]['id']}")).json()
        assert dead["reason"] == "the body is not JSON" and dead["origin"] == "api"
        assert dead["headers"] == {"content-type": "application/json"}
        assert dead["truncated"] is True and dead["body"].startswith("{xyyy")
        assert len(dead["body"]) == BODY_MAX_BYTES
        assert dead["retryable"] is False
        resolved = (await admin.get("/v1/dead-letters", params={"resolved": "true"})).json()
        assert resolved["items"] == []
        bad = await admin.get("/v1/dead-letters", params={"resolved": "maybe"})
        assert bad.status_code == 422


async def test_retry_runs_the_process_again_and_resolves_the_dead_letter(database_url: str
                                                                        ) -> None:
    async with api(database_url) as a:
        account, admin = await a.account("shop")
        viewer = await a.token(admin, "viewer")
        job_id, process_id = await failed_job(admin, database_url, account["id"])
        [dead] = (await admin.get("/v1/dead-letters")).json()["items"]
        assert dead["retryable"] is True and dead["resolved_at"] is None

        assert (await viewer.post(f"/v1/dead-letters/{dead['id']}/retry")).status_code == 403
        retried = await admin.post(f"/v1/dead-letters/{dead['id']}/retry")
        assert retried.status_code == 200, retried.text
        assert retried.json()["process"]["id"] == process_id
        assert retried.json()["process"]["status"] == "pending"
        assert retried.json()["dead_letter"]["resolved_at"] is not None
        assert (await admin.get(f"/v1/jobs/{job_id}")).json()["status"] == "running"
        with psycopg.connect(database_url) as conn:
            sent = conn.execute("SELECT count(*) FROM outbox WHERE process_id = %s",
                                (process_id,)).fetchone()[0]
        assert sent == 2  # the first delivery and the retry's
        unresolved = (await admin.get("/v1/dead-letters", params={"resolved": "false"})).json()
        assert unresolved["items"] == []
        again = await admin.post(f"/v1/dead-letters/{dead['id']}/retry")
        assert again.status_code == 409 and again.json()["error"]["code"] == "process_not_failed"


async def test_a_malformed_event_has_nothing_to_retry(database_url: str) -> None:
    async with api(database_url) as a:
        account, admin = await a.account("shop")
        await keep(database_url, account_id=uuid.UUID(account["id"]), reason="not a packet")
        [dead] = (await admin.get("/v1/dead-letters")).json()["items"]
        refused = await admin.post(f"/v1/dead-letters/{dead['id']}/retry")
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "nothing_to_retry"
        assert "nothing to retry" in refused.json()["error"]["message"]
        assert (await admin.get(f"/v1/dead-letters/{dead['id']}")).json()["resolved_at"] is None


async def test_accounts_see_their_own_and_operators_every_one(database_url: str) -> None:
    async with api(database_url) as a:
        shop, shop_admin = await a.account("shop")
        other, other_admin = await a.account("other")
        await failed_job(shop_admin, database_url, shop["id"])
        await keep(database_url, reason="no account at all")  # a packet naming nobody
        [dead] = (await shop_admin.get("/v1/dead-letters")).json()["items"]

        assert (await other_admin.get("/v1/dead-letters")).json()["items"] == []
        assert (await other_admin.get(f"/v1/dead-letters/{dead['id']}")).status_code == 404
        assert (await other_admin.post(f"/v1/dead-letters/{dead['id']}/retry")
                ).status_code == 404
        peek = await other_admin.get("/v1/dead-letters", params={"account_id": shop["id"]})
        assert peek.json()["items"] == []
        assert (await shop_admin.get("/v1/dead-letters/999999")).status_code == 404

        every = (await a.operator.get("/v1/dead-letters")).json()["items"]
        assert {d["account_id"] for d in every} == {shop["id"], None}
        one = (await a.operator.get("/v1/dead-letters",
                                    params={"account_id": shop["id"]})).json()["items"]
        assert [d["id"] for d in one] == [dead["id"]]
        assert (await a.operator.get(f"/v1/dead-letters/{dead['id']}")).status_code == 200
        assert other["id"] not in {d["account_id"] for d in every}
