"""Cancel and retry through the API, each in one transaction with its outbox row."""

from __future__ import annotations

import psycopg
from cp_support import api, manual_then, workflow


def fail(database_url: str, job_id: str) -> str:
    with psycopg.connect(database_url, autocommit=True) as conn:
        process_id = conn.execute(
            "UPDATE processes SET status = 'failed', attempt = 3, finished_at = now(), "
            "started_at = now(), error = '{\"message\": \"boom\"}', "
            "logs = '[{\"message\": \"tried\"}]' "
            "WHERE job_id = %s AND status = 'pending' RETURNING id", (job_id,)).fetchone()[0]
        conn.execute("UPDATE outbox SET status = 'sent', sent_at = now() WHERE job_id = %s",
                     (job_id,))
        conn.execute("UPDATE jobs SET status = 'failed', finished_at = now() WHERE id = %s",
                     (job_id,))
        conn.execute("INSERT INTO dead_letters (consumer, event_id, job_id, process_id, origin, "
                     "reason) VALUES ('Transform', 'e1', %s, %s, 'function', 'boom')",
                     (job_id, process_id))
    return str(process_id)


async def test_a_failed_process_is_retried_with_its_recorded_input(database_url: str) -> None:
    async with api(database_url) as a:
        flow = await workflow(a.operator, manual_then())
        job = (await a.operator.post(f"/v1/workflows/{flow['id']}/jobs",
                                     json={"payload": {"order": 7}})).json()
        process_id = fail(database_url, job["id"])
        retried = await a.operator.post(f"/v1/processes/{process_id}/retry")
        assert retried.status_code == 200, retried.text
        process = retried.json()
        assert process["status"] == "pending" and process["attempt"] == 0
        assert process["error"] is None and process["finished_at"] is None
        assert [entry["message"] for entry in process["logs"]][0] == "tried"
        again = (await a.operator.get(f"/v1/jobs/{job['id']}")).json()
        assert again["status"] == "running" and again["finished_at"] is None
        assert again["counts"]["pending"] == 1 and again["counts"]["failed"] == 0
        with psycopg.connect(database_url) as conn:
            destination, data = conn.execute(
                "SELECT destination, data FROM outbox WHERE process_id = %s AND "
                "status = 'pending'", (process_id,)).fetchone()
            resolved = conn.execute("SELECT resolved_at FROM dead_letters").fetchone()[0]
        assert destination == "Transform" and resolved is not None
        assert data["payload"] == {"order": 7} and data["attempt"] == 1
        assert data["process"]["id"] == process_id and data["job"]["id"] == job["id"]
        assert data["workflow"] == {"id": flow["id"], "version": 1}
        assert data["step"]["key"] == "work"
        assert (await a.operator.post(f"/v1/processes/{process_id}/retry")).status_code == 409


async def test_cancel_stops_pending_messages(database_url: str) -> None:
    async with api(database_url) as a:
        flow = await workflow(a.operator, manual_then())
        job = (await a.operator.post(f"/v1/workflows/{flow['id']}/jobs", json={})).json()
        cancelled = await a.operator.post(f"/v1/jobs/{job['id']}/cancel")
        assert cancelled.status_code == 200
        body = cancelled.json()
        assert body["status"] == "cancelled" and body["counts"]["cancelled"] == 1
        with psycopg.connect(database_url) as conn:
            statuses = {r[0] for r in conn.execute("SELECT status FROM outbox")}
        assert statuses == {"cancelled"}
        again = await a.operator.post(f"/v1/jobs/{job['id']}/cancel")
        assert again.status_code == 409 and again.json()["error"]["code"] == "job_ended"
        processes = (await a.operator.get(f"/v1/jobs/{job['id']}/processes")).json()["items"]
        failed_retry = await a.operator.post(f"/v1/processes/{processes[-1]['id']}/retry")
        assert failed_retry.status_code == 409
