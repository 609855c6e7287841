"""Limits (a clear 413, list limits, values PostgreSQL cannot store), JSON log lines
carrying the ids, and the Prometheus metrics."""

from __future__ import annotations

import json
import logging

import pytest
from cp_support import api, manual_then, workflow

from stepline_control.logs import JsonFormatter

MAX_BODY = 4096


async def test_a_body_over_the_limit_is_a_clear_413(database_url: str) -> None:
    async with api(database_url, max_body_bytes=MAX_BODY) as a:
        flow = await workflow(a.operator, manual_then())
        big = {"payload": {"blob": "x" * (MAX_BODY + 1)}}
        declared = await a.operator.post(f"/v1/workflows/{flow['id']}/jobs", json=big)
        assert declared.status_code == 413
        error = declared.json()["error"]
        assert error["code"] == "payload_too_large" and str(MAX_BODY) in error["message"]

        async def chunks():
            raw = json.dumps(big).encode()
            for i in range(0, len(raw), 1000):
                yield raw[i:i + 1000]

        streamed = await a.operator.post(f"/v1/workflows/{flow['id']}/jobs", content=chunks(),
                                         headers={"content-type": "application/json"})
        assert streamed.status_code == 413
        assert streamed.json()["error"]["code"] == "payload_too_large"
        small = await a.operator.post(f"/v1/workflows/{flow['id']}/jobs", json={"payload": 1})
        assert small.status_code == 201
        jobs = (await a.operator.get("/v1/jobs")).json()["items"]
        assert len(jobs) == 1


@pytest.mark.parametrize("raw", ['{"payload": NaN}', '{"payload": "\\u0000"}',
                                 '{"payload": {"k": Infinity}}'])
async def test_a_value_postgresql_cannot_store_is_a_422(database_url: str, raw: str) -> None:
    async with api(database_url) as a:
        flow = await workflow(a.operator, manual_then())
        response = await a.operator.post(f"/v1/workflows/{flow['id']}/jobs", content=raw,
                                         headers={"content-type": "application/json"})
        assert response.status_code == 422, response.text
        assert (await a.operator.get("/v1/jobs")).json()["items"] == []


async def test_lists_are_limited_and_paged_without_gaps(database_url: str) -> None:
    async with api(database_url) as a:
        assert (await a.operator.get("/v1/projects?limit=501")).status_code == 422
        names = {f"p{i}" for i in range(7)}
        for name in names:
            await a.operator.post("/v1/projects", json={"name": name})
        seen, cursor, pages = [], None, 0
        while True:
            params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
            page = (await a.operator.get("/v1/projects", params=params)).json()
            seen += [p["name"] for p in page["items"]]
            pages, cursor = pages + 1, page["next_cursor"]
            if not cursor:
                break
        assert pages == 3 and sorted(seen) == sorted(names) and len(seen) == len(set(seen))

        flow = await workflow(a.operator, manual_then())
        ids = [(await a.operator.post(f"/v1/workflows/{flow['id']}/jobs", json={})).json()["id"]
               for _ in range(5)]
        first = (await a.operator.get("/v1/jobs", params={"limit": 2})).json()
        second = (await a.operator.get("/v1/jobs", params={"limit": 2,
                                                           "cursor": first["next_cursor"]})).json()
        listed = [j["id"] for j in first["items"] + second["items"]]
        assert listed == list(reversed(ids))[:4]  # newest first
        later = first["items"][0]["created_at"]
        only_last = (await a.operator.get("/v1/jobs", params={"from": later})).json()["items"]
        assert [j["id"] for j in only_last] == [ids[-1]]
        before = (await a.operator.get("/v1/jobs", params={"to": later})).json()["items"]
        assert ids[-1] not in [j["id"] for j in before] and len(before) == 4
        running = (await a.operator.get("/v1/jobs", params={"status": "running"})).json()
        assert len(running["items"]) == 5
        assert (await a.operator.get("/v1/jobs", params={"status": "failed"})).json()["items"] == []


async def test_log_lines_are_json_with_account_job_and_request_ids(database_url: str) -> None:
    lines: list[dict] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(JsonFormatter().format(record)))

    handler = Capture(logging.INFO)
    logger = logging.getLogger("stepline_control")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    try:
        async with api(database_url) as a:
            account, client = await a.account("logged")
            flow = await workflow(client, manual_then())
            job = (await client.post(f"/v1/workflows/{flow['id']}/jobs", json={},
                                     headers={"X-Request-Id": "req-123"})).json()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
    started = next(line for line in lines if line["message"] == "job started")
    assert started["account_id"] == account["id"] and started["job_id"] == job["id"]
    assert started["workflow_id"] == flow["id"] and started["request_id"] == "req-123"
    access = [line for line in lines if line["logger"] == "stepline_control.access"
              and line.get("request_id") == "req-123"]
    assert access and access[0]["status"] == 201 and access[0]["account_id"] == account["id"]
    assert access[0]["route"] == "/v1/workflows/{workflow_id}/jobs"


async def test_metrics_show_requests_jobs_processes_and_the_outbox(database_url: str) -> None:
    async with api(database_url) as a:
        flow = await workflow(a.operator, manual_then())
        await a.operator.post(f"/v1/workflows/{flow['id']}/jobs", json={})
        text = (await a.anonymous.get("/metrics")).text
    assert 'stepline_http_requests_total{method="POST",route="/v1/workflows",status="201"} 1.0' \
        in text
    assert 'stepline_jobs_started_total{trigger="manual"} 1.0' in text
    assert 'stepline_jobs{status="running"} 1.0' in text
    assert 'stepline_processes{function="Transform",status="pending"} 1.0' in text
    assert 'stepline_processes{function="Manual",status="succeeded"} 1.0' in text
    assert "stepline_outbox_backlog 1.0" in text
    age = next(line for line in text.splitlines()
               if line.startswith("stepline_outbox_oldest_pending_age_seconds "))
    assert 0 <= float(age.split()[1]) < 60
