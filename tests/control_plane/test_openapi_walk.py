"""Every operation the OpenAPI document names is called at least once with good input
and once with bad input, against the real PostgreSQL; a documented operation missing
from the table below fails the test, so the table grows with the API."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
from cp_support import Api, api, dead_letter, manual_then, project, workflow

UNKNOWN = str(uuid.uuid4())
PUBLIC = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}


@dataclass
class World:
    """What the calls need: an account with its clients and one of everything."""

    api: Api
    admin: httpx.AsyncClient
    viewer: httpx.AsyncClient
    account_id: str
    project_id: str
    workflow: dict[str, Any]
    job_id: str
    process_id: str
    connection_id: str
    token_id: str
    hook_step_id: str
    dead_letter_id: int
    malformed_id: int
    service_id: str


Call = tuple[str, str, dict[str, Any], int]  # client name, url, request kwargs, status
Case = Callable[[World], Call]


def fail_process(database_url: str, job_id: str) -> str:
    """The job's action process failed, as a function would have recorded it."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "UPDATE processes SET status = 'failed', finished_at = now(), "
            "error = '{\"type\": \"permanent\", \"message\": \"boom\"}' "
            "WHERE job_id = %s AND step_key = 'work' RETURNING id", (job_id,)).fetchone()
        conn.execute("UPDATE jobs SET status = 'failed', finished_at = now() WHERE id = %s",
                     (job_id,))
    return str(row[0])


def steps_v2() -> list[dict[str, Any]]:
    return manual_then(config={"expression": "{v: `2`}"})


# (method, path) -> (good, bad), called in this order (deletions last)
CASES: list[tuple[str, str, Case, Case]] = [
    ("GET", "/healthz", lambda w: ("anonymous", "/healthz", {}, 200),
     lambda w: ("anonymous", "/healthz?x=%00", {}, 200)),
    ("GET", "/readyz", lambda w: ("anonymous", "/readyz", {}, 200),
     lambda w: ("anonymous", "/readyz", {"method": "DELETE"}, 405)),
    ("GET", "/metrics", lambda w: ("anonymous", "/metrics", {}, 200),
     lambda w: ("anonymous", "/metrics", {"method": "POST"}, 405)),
    ("GET", "/v1/me", lambda w: ("viewer", "/v1/me", {}, 200),
     lambda w: ("viewer", "/v1/me", {"method": "DELETE"}, 405)),
    ("POST", "/v1/accounts",
     lambda w: ("operator", "/v1/accounts", {"json": {"name": "other", "monthly_quota": 5}}, 201),
     lambda w: ("operator", "/v1/accounts", {"json": {"name": "", "monthly_quota": -1}}, 422)),
    ("GET", "/v1/accounts", lambda w: ("operator", "/v1/accounts?limit=1", {}, 200),
     lambda w: ("admin", "/v1/accounts", {}, 403)),
    ("GET", "/v1/accounts/{account_id}",
     lambda w: ("admin", f"/v1/accounts/{w.account_id}", {}, 200),
     lambda w: ("admin", f"/v1/accounts/{UNKNOWN}", {}, 404)),
    ("PATCH", "/v1/accounts/{account_id}",
     lambda w: ("operator", f"/v1/accounts/{w.account_id}", {"json": {"monthly_quota": 1000}},
                200),
     lambda w: ("admin", f"/v1/accounts/{w.account_id}", {"json": {"monthly_quota": 10**9}},
                403)),
    ("POST", "/v1/accounts/{account_id}/block",
     lambda w: ("operator", f"/v1/accounts/{w.account_id}/block", {"json": {"reason": "test"}},
                200),
     lambda w: ("operator", f"/v1/accounts/{UNKNOWN}/block", {}, 404)),
    ("POST", "/v1/accounts/{account_id}/unblock",
     lambda w: ("operator", f"/v1/accounts/{w.account_id}/unblock", {}, 200),
     lambda w: ("operator", "/v1/accounts/not-a-uuid/unblock", {}, 422)),
    ("POST", "/v1/tokens",
     lambda w: ("admin", "/v1/tokens", {"json": {"name": "ci", "role": "editor"}}, 201),
     lambda w: ("admin", "/v1/tokens", {"json": {"name": "ci", "role": "owner"}}, 422)),
    ("GET", "/v1/tokens", lambda w: ("admin", "/v1/tokens", {}, 200),
     lambda w: ("admin", "/v1/tokens?limit=0", {}, 422)),
    ("POST", "/v1/projects",
     lambda w: ("admin", "/v1/projects", {"json": {"name": "second"}}, 201),
     lambda w: ("viewer", "/v1/projects", {"json": {"name": "third"}}, 403)),
    ("GET", "/v1/projects", lambda w: ("admin", "/v1/projects", {}, 200),
     lambda w: ("admin", "/v1/projects?cursor=garbage", {}, 422)),
    ("GET", "/v1/projects/{project_id}",
     lambda w: ("admin", f"/v1/projects/{w.project_id}", {}, 200),
     lambda w: ("admin", f"/v1/projects/{UNKNOWN}", {}, 404)),
    ("PATCH", "/v1/projects/{project_id}",
     lambda w: ("admin", f"/v1/projects/{w.project_id}", {"json": {"description": "d"}}, 200),
     lambda w: ("admin", f"/v1/projects/{w.project_id}", {"json": {"colour": "red"}}, 422)),
    ("POST", "/v1/connections",
     lambda w: ("admin", "/v1/connections", {"json": {
         "name": "api", "kind": "http", "config": {"base_url": "https://example.com"},
         "secret": {"token": "s3cr3t"}}}, 201),
     lambda w: ("admin", "/v1/connections", {"json": {
         "name": "db", "kind": "postgres", "config": {"host": "h", "dbname": "d", "user": "u",
                                                     "password": "leak"}}}, 422)),
    ("GET", "/v1/connections", lambda w: ("admin", "/v1/connections", {}, 200),
     lambda w: ("admin", "/v1/connections?limit=100000", {}, 422)),
    ("GET", "/v1/connections/{connection_id}",
     lambda w: ("admin", f"/v1/connections/{w.connection_id}", {}, 200),
     lambda w: ("admin", f"/v1/connections/{UNKNOWN}", {}, 404)),
    ("GET", "/v1/functions", lambda w: ("viewer", "/v1/functions", {}, 200),
     lambda w: ("anonymous", "/v1/functions", {}, 401)),
    ("POST", "/v1/functions",
     lambda w: ("operator", "/v1/functions", {"json": {
         "name": "Walk.greet", "kind": "action", "visibility": "public",
         "config_schema": {"type": "object"}, "endpoint": "http://127.0.0.1:9/"}}, 201),
     lambda w: ("admin", "/v1/functions", {"json": {
         "name": "Walk.other", "kind": "action", "visibility": "public",
         "config_schema": {"type": "object"}, "endpoint": "http://127.0.0.1:9/"}}, 403)),
    ("PATCH", "/v1/functions/{name}",
     lambda w: ("operator", "/v1/functions/Transform", {"json": {"price_per_process": "0.001"}},
                200),
     lambda w: ("operator", "/v1/functions/Transform", {"json": {"price_per_process": 0.1}},
                422)),
    ("POST", "/v1/services",
     lambda w: ("admin", "/v1/services", {"json": {
         "workflow_id": w.workflow["id"], "name": "Walk.second", "visibility": "private"}}, 201),
     lambda w: ("admin", "/v1/services", {"json": {
         "workflow_id": w.workflow["id"], "name": "Walk.second", "visibility": "private"}}, 409)),
    ("GET", "/v1/services", lambda w: ("viewer", "/v1/services", {}, 200),
     lambda w: ("viewer", "/v1/services?limit=0", {}, 422)),
    ("GET", "/v1/services/{service_id}",
     lambda w: ("viewer", f"/v1/services/{w.service_id}", {}, 200),
     lambda w: ("viewer", f"/v1/services/{UNKNOWN}", {}, 404)),
    ("PATCH", "/v1/services/{service_id}",
     lambda w: ("admin", f"/v1/services/{w.service_id}", {"json": {"price_per_call": "0.5"}},
                200),
     lambda w: ("admin", f"/v1/services/{w.service_id}", {"json": {"version": 99}}, 422)),
    ("GET", "/v1/billing", lambda w: ("viewer", "/v1/billing?month=2026-01&format=csv", {}, 200),
     lambda w: ("viewer", "/v1/billing?month=2026-1", {}, 422)),
    ("POST", "/v1/workflows",
     lambda w: ("admin", "/v1/workflows", {"json": {
         "project_id": w.project_id, "name": "another", "steps": manual_then()}}, 201),
     lambda w: ("admin", "/v1/workflows", {"json": {
         "project_id": w.project_id, "name": "broken",
         "steps": [{"key": "a", "function": "Nope"}]}}, 422)),
    ("GET", "/v1/workflows",
     lambda w: ("viewer", f"/v1/workflows?project_id={w.project_id}", {}, 200),
     lambda w: ("viewer", "/v1/workflows?project_id=nope", {}, 422)),
    ("GET", "/v1/workflows/{workflow_id}",
     lambda w: ("viewer", f"/v1/workflows/{w.workflow['id']}", {}, 200),
     lambda w: ("viewer", f"/v1/workflows/{UNKNOWN}", {}, 404)),
    ("PUT", "/v1/workflows/{workflow_id}",
     lambda w: ("admin", f"/v1/workflows/{w.workflow['id']}",
                {"json": {"name": "renamed", "steps": steps_v2()}}, 200),
     lambda w: ("admin", f"/v1/workflows/{w.workflow['id']}",
                {"json": {"name": "renamed", "steps": []}}, 422)),
    ("GET", "/v1/workflows/{workflow_id}/versions",
     lambda w: ("viewer", f"/v1/workflows/{w.workflow['id']}/versions", {}, 200),
     lambda w: ("viewer", f"/v1/workflows/{UNKNOWN}/versions", {}, 404)),
    ("GET", "/v1/workflows/{workflow_id}/versions/{version}",
     lambda w: ("viewer", f"/v1/workflows/{w.workflow['id']}/versions/1", {}, 200),
     lambda w: ("viewer", f"/v1/workflows/{w.workflow['id']}/versions/99", {}, 404)),
    ("GET", "/v1/workflows/{workflow_id}/diagram",
     lambda w: ("viewer", f"/v1/workflows/{w.workflow['id']}/diagram", {}, 200),
     lambda w: ("viewer", f"/v1/workflows/{w.workflow['id']}/diagram?version=0", {}, 422)),
    ("POST", "/v1/workflows/{workflow_id}/pause",
     lambda w: ("admin", f"/v1/workflows/{w.workflow['id']}/pause", {}, 200),
     lambda w: ("viewer", f"/v1/workflows/{w.workflow['id']}/pause", {}, 403)),
    ("POST", "/v1/workflows/{workflow_id}/resume",
     lambda w: ("admin", f"/v1/workflows/{w.workflow['id']}/resume", {}, 200),
     lambda w: ("admin", f"/v1/workflows/{UNKNOWN}/resume", {}, 404)),
    ("POST", "/v1/workflows/{workflow_id}/block",
     lambda w: ("operator", f"/v1/workflows/{w.workflow['id']}/block", {}, 200),
     lambda w: ("admin", f"/v1/workflows/{w.workflow['id']}/block", {}, 403)),
    ("POST", "/v1/workflows/{workflow_id}/unblock",
     lambda w: ("operator", f"/v1/workflows/{w.workflow['id']}/unblock", {}, 200),
     lambda w: ("operator", f"/v1/workflows/{UNKNOWN}/unblock", {}, 404)),
    ("POST", "/v1/workflows/{workflow_id}/jobs",
     lambda w: ("admin", f"/v1/workflows/{w.workflow['id']}/jobs", {"json": {"payload": {}}},
                201),
     lambda w: ("admin", f"/v1/workflows/{w.workflow['id']}/jobs",
                {"json": {"payload": {}, "extra": 1}}, 422)),
    ("GET", "/v1/steps/{step_id}",
     lambda w: ("viewer", f"/v1/steps/{w.workflow['steps'][1]['id']}", {}, 200),
     lambda w: ("viewer", f"/v1/steps/{UNKNOWN}", {}, 404)),
    ("GET", "/v1/jobs",
     lambda w: ("viewer", f"/v1/jobs?workflow_id={w.workflow['id']}&status=failed"
                "&from=2020-01-01T00:00:00Z", {}, 200),
     lambda w: ("viewer", "/v1/jobs?status=exploded", {}, 422)),
    ("GET", "/v1/jobs/{job_id}", lambda w: ("viewer", f"/v1/jobs/{w.job_id}", {}, 200),
     lambda w: ("viewer", f"/v1/jobs/{UNKNOWN}", {}, 404)),
    ("GET", "/v1/jobs/{job_id}/processes",
     lambda w: ("viewer", f"/v1/jobs/{w.job_id}/processes?limit=1", {}, 200),
     lambda w: ("viewer", f"/v1/jobs/{UNKNOWN}/processes", {}, 404)),
    ("POST", "/v1/processes/{process_id}/retry",
     lambda w: ("admin", f"/v1/processes/{w.process_id}/retry", {}, 200),
     # once retried it is pending, not failed: a second retry is refused
     lambda w: ("admin", f"/v1/processes/{w.process_id}/retry", {}, 409)),
    ("GET", "/v1/dead-letters",
     lambda w: ("viewer", "/v1/dead-letters?consumer=Transform&resolved=false", {}, 200),
     lambda w: ("viewer", "/v1/dead-letters?job_id=nope", {}, 422)),
    ("GET", "/v1/dead-letters/{dead_letter_id}",
     lambda w: ("viewer", f"/v1/dead-letters/{w.dead_letter_id}", {}, 200),
     lambda w: ("viewer", "/v1/dead-letters/0", {}, 422)),
    ("POST", "/v1/dead-letters/{dead_letter_id}/retry",
     lambda w: ("admin", f"/v1/dead-letters/{w.dead_letter_id}/retry", {}, 200),
     lambda w: ("admin", f"/v1/dead-letters/{w.malformed_id}/retry", {}, 409)),
    ("POST", "/v1/jobs/{job_id}/cancel",
     lambda w: ("admin", f"/v1/jobs/{w.job_id}/cancel", {}, 200),
     lambda w: ("admin", f"/v1/jobs/{w.job_id}/cancel", {}, 409)),
    ("GET", "/v1/usage", lambda w: ("viewer", "/v1/usage?from=2020-01-01&to=2020-12-31", {}, 200),
     lambda w: ("viewer", "/v1/usage?from=2021-01-01&to=2020-01-01", {}, 422)),
    ("DELETE", "/v1/connections/{connection_id}",
     lambda w: ("admin", f"/v1/connections/{w.connection_id}", {}, 204),
     lambda w: ("admin", f"/v1/connections/{w.connection_id}", {}, 404)),
    ("POST", "/v1/hooks/{step_id}",
     lambda w: ("admin", f"/v1/hooks/{w.hook_step_id}", {"json": {"order": 1}}, 202),
     lambda w: ("admin", f"/v1/hooks/{UNKNOWN}", {"json": {"order": 1}}, 404)),
    ("DELETE", "/v1/tokens/{token_id}", lambda w: ("admin", f"/v1/tokens/{w.token_id}", {}, 204),
     lambda w: ("viewer", f"/v1/tokens/{w.token_id}", {}, 403)),
    ("DELETE", "/v1/projects/{project_id}",
     # its workflow is still there: refused until the workflow is deleted
     lambda w: ("admin", f"/v1/projects/{w.project_id}", {}, 409),
     lambda w: ("admin", f"/v1/projects/{UNKNOWN}", {}, 404)),
    ("DELETE", "/v1/services/{service_id}",
     lambda w: ("admin", f"/v1/services/{w.service_id}", {}, 204),
     lambda w: ("admin", f"/v1/services/{w.service_id}", {}, 404)),
    ("DELETE", "/v1/workflows/{workflow_id}",
     lambda w: ("admin", f"/v1/workflows/{w.workflow['id']}", {}, 204),
     lambda w: ("admin", f"/v1/workflows/{w.workflow['id']}", {}, 404)),
]


async def make_world(a: Api, database_url: str) -> World:
    account, admin = await a.account("walker")
    viewer = await a.token(admin, "viewer")
    project_id = await project(admin, "walk")
    flow = await workflow(admin, manual_then(), project_id=project_id)
    started = await admin.post(f"/v1/workflows/{flow['id']}/jobs", json={"payload": {"n": 1}})
    assert started.status_code == 201, started.text
    job_id = started.json()["id"]
    process_id = fail_process(database_url, job_id)
    second = await admin.post(f"/v1/workflows/{flow['id']}/jobs", json={"payload": {"n": 2}})
    dead_letter_id = dead_letter(database_url, account["id"],
                                 fail_process(database_url, second.json()["id"]))
    connection = await admin.post("/v1/connections", json={
        "name": "crm", "kind": "postgres", "secret": {"password": "pw"},
        "config": {"host": "127.0.0.1", "port": 5432, "dbname": "crm", "user": "crm"}})
    spare = await admin.post("/v1/tokens", json={"name": "spare", "role": "viewer"})
    hooked = await workflow(admin, [{"key": "hook", "function": "Webhook", "output": None}],
                            project_id=project_id)
    service = await admin.post("/v1/services", json={
        "workflow_id": flow["id"], "name": "Walk.enrich", "visibility": "public"})
    return World(api=a, admin=admin, viewer=viewer, account_id=account["id"],
                 project_id=project_id, workflow=flow, job_id=job_id, process_id=process_id,
                 connection_id=connection.json()["id"], token_id=spare.json()["id"],
                 hook_step_id=hooked["steps"][0]["id"], dead_letter_id=dead_letter_id,
                 malformed_id=dead_letter(database_url, account["id"], None),
                 service_id=service.json()["id"])


async def call(world: World, case: Case, method: str) -> tuple[httpx.Response, int]:
    who, url, kwargs, expected = case(world)
    client = {"admin": world.admin, "viewer": world.viewer, "operator": world.api.operator,
              "anonymous": world.api.anonymous}[who]
    kwargs = dict(kwargs)
    return await client.request(kwargs.pop("method", method), url, **kwargs), expected


def assert_error_shape(response: httpx.Response) -> None:
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert isinstance(error["code"], str) and error["message"]


async def test_every_documented_operation_answers_good_and_bad_input(database_url: str) -> None:
    async with api(database_url) as a:
        document = (await a.anonymous.get("/openapi.json")).json()
        documented = {(method.upper(), path) for path, ops in document["paths"].items()
                      for method in ops}
        assert documented == {(m, p) for m, p, _, _ in CASES}
        assert (await a.anonymous.get("/docs")).status_code == 200
        world = await make_world(a, database_url)
        for method, path, good, bad in CASES:
            if (method, path) not in PUBLIC:
                unauthenticated = await a.anonymous.request(method, good(world)[1])
                assert unauthenticated.status_code == 401, (method, path)
                assert_error_shape(unauthenticated)
            response, expected = await call(world, good, method)
            assert response.status_code == expected, (method, path, response.text)
            response, expected = await call(world, bad, method)
            assert response.status_code == expected, (method, path, "bad", response.text)
            if response.status_code >= 400 and path != "/metrics":
                assert_error_shape(response)
