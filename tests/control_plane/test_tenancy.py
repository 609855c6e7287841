"""Two accounts side by side: no endpoint returns, counts or changes the other's data;
another account's object is a 404, never a 403; a viewer writes nothing."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import psycopg
from cp_support import api, dead_letter, manual_then, project, workflow


async def populate(client: httpx.AsyncClient, name: str) -> dict[str, Any]:
    """One of everything in an account; its action process failed so it can be retried."""
    project_id = await project(client, f"{name} project")
    flow = await workflow(client, manual_then(), project_id=project_id, name=f"{name} flow")
    job = (await client.post(f"/v1/workflows/{flow['id']}/jobs", json={"payload": {}})).json()
    connection = (await client.post("/v1/connections", json={
        "name": "crm", "kind": "http", "config": {}, "secret": {"token": f"{name}-secret"}})).json()
    token = (await client.post("/v1/tokens", json={"name": "ro", "role": "viewer"})).json()
    processes = (await client.get(f"/v1/jobs/{job['id']}/processes")).json()["items"]
    return {"project": project_id, "workflow": flow["id"], "job": job["id"],
            "step": flow["steps"][1]["id"], "connection": connection["id"],
            "token": token["id"], "process": processes[-1]["id"]}


def fail_processes(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE processes SET status = 'failed', finished_at = now() "
                     "WHERE status = 'pending'")
        conn.execute("UPDATE jobs SET status = 'failed', finished_at = now()")


def foreign_calls(ids: dict[str, Any], account_id: str) -> list[tuple[str, str, dict]]:
    """Every call that names one of another account's objects."""
    w, j = ids["workflow"], ids["job"]
    return [
        ("GET", f"/v1/accounts/{account_id}", {}),
        ("GET", f"/v1/projects/{ids['project']}", {}),
        ("PATCH", f"/v1/projects/{ids['project']}", {"json": {"name": "mine now"}}),
        ("DELETE", f"/v1/projects/{ids['project']}", {}),
        ("GET", f"/v1/connections/{ids['connection']}", {}),
        ("DELETE", f"/v1/connections/{ids['connection']}", {}),
        ("DELETE", f"/v1/tokens/{ids['token']}", {}),
        ("POST", "/v1/tokens", {"json": {"name": "x", "role": "admin", "account_id": account_id}}),
        ("GET", f"/v1/workflows/{w}", {}),
        ("PUT", f"/v1/workflows/{w}", {"json": {"name": "mine", "steps": manual_then()}}),
        ("DELETE", f"/v1/workflows/{w}", {}),
        ("GET", f"/v1/workflows/{w}/versions", {}),
        ("GET", f"/v1/workflows/{w}/versions/1", {}),
        ("GET", f"/v1/workflows/{w}/diagram", {}),
        ("POST", f"/v1/workflows/{w}/pause", {}),
        ("POST", f"/v1/workflows/{w}/resume", {}),
        ("POST", f"/v1/workflows/{w}/jobs", {"json": {"payload": {}}}),
        ("GET", f"/v1/steps/{ids['step']}", {}),
        ("GET", f"/v1/jobs/{j}", {}),
        ("GET", f"/v1/jobs/{j}/processes", {}),
        ("POST", f"/v1/jobs/{j}/cancel", {}),
        ("POST", f"/v1/processes/{ids['process']}/retry", {}),
        ("GET", f"/v1/usage?account_id={account_id}", {}),
        ("POST", "/v1/workflows", {"json": {"project_id": ids["project"], "name": "in yours",
                                            "steps": manual_then()}}),
    ]


async def snapshot(client: httpx.AsyncClient, ids: dict[str, Any]) -> list[Any]:
    paths = ["/v1/projects", "/v1/connections", "/v1/tokens", "/v1/workflows", "/v1/jobs",
             f"/v1/workflows/{ids['workflow']}", f"/v1/workflows/{ids['workflow']}/versions",
             f"/v1/jobs/{ids['job']}/processes", f"/v1/steps/{ids['step']}"]
    pages = [(await client.get(path)).json() for path in paths]
    for token in pages[2]["items"]:
        token.pop("last_used_at")  # reading with a token is using it
    return pages


async def test_two_accounts_see_and_change_nothing_of_each_other(database_url: str) -> None:
    async with api(database_url) as a:
        account_a, alice = await a.account("alice")
        account_b, bob = await a.account("bob")
        ids_a, ids_b = await populate(alice, "alice"), await populate(bob, "bob")
        fail_processes(database_url)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("INSERT INTO functions (name, slug, kind, visibility, account_id, "
                         "description, config_schema) VALUES ('Alice.private', 'alice-private', "
                         "'action', 'private', %s, 'mine', '{}')", (account_a["id"],))
        before = await snapshot(alice, ids_a)

        for method, url, kwargs in foreign_calls(ids_a, account_a["id"]):
            response = await bob.request(method, url, **kwargs)
            if url == "/v1/workflows":
                assert response.status_code == 422, response.text  # "no such project"
                continue
            assert response.status_code == 404, (method, url, response.text)
            assert ids_a["workflow"] not in response.text and "alice" not in response.text

        assert await snapshot(alice, ids_a) == before
        dead = dead_letter(database_url, account_a["id"], ids_a["process"])
        for method, url in (("GET", f"/v1/dead-letters/{dead}"),
                            ("POST", f"/v1/dead-letters/{dead}/retry")):
            assert (await bob.request(method, url)).status_code == 404, url
        assert (await bob.get("/v1/dead-letters")).json()["items"] == []
        assert (await alice.get(f"/v1/dead-letters/{dead}")).status_code == 200
        everything_of_bob = " ".join(str(v) for v in await snapshot(bob, ids_b))
        for value in ids_a.values():
            assert value not in everything_of_bob
        filtered = await bob.get(f"/v1/jobs?workflow_id={ids_a['workflow']}")
        assert filtered.json()["items"] == []
        usage_b = (await bob.get("/v1/usage")).json()
        assert usage_b["totals"]["jobs"] == 1 and usage_b["totals"]["processes"] == 2
        names_b = {f["name"] for f in (await bob.get("/v1/functions")).json()["items"]}
        names_a = {f["name"] for f in (await alice.get("/v1/functions")).json()["items"]}
        assert "Alice.private" in names_a and "Alice.private" not in names_b
        private = await bob.post("/v1/workflows", json={
            "project_id": ids_b["project"], "name": "borrow",
            "steps": [{"key": "s", "function": "Alice.private", "output": None}]})
        assert private.status_code == 422
        assert private.json()["error"]["details"][0]["field"] == "function"
        assert (await bob.get(f"/v1/accounts/{account_b['id']}")).status_code == 200
        tokens = (await bob.get("/v1/tokens")).json()["items"]
        assert {t["account_id"] for t in tokens} == {account_b["id"]}
        used = next(t for t in tokens if t["id"] == account_b["admin_token"]["id"])
        assert used["last_used_at"] is not None
        assert (await bob.get("/v1/accounts")).status_code == 403


WRITE = re.compile(r"^(POST|PUT|PATCH|DELETE)$")


async def test_a_viewer_writes_nothing(database_url: str) -> None:
    async with api(database_url) as a:
        _, admin = await a.account("acme")
        ids = await populate(admin, "acme")
        viewer = await a.token(admin, "viewer")
        editor = await a.token(admin, "editor")
        document = (await a.anonymous.get("/openapi.json")).json()
        fill = {"project_id": ids["project"], "workflow_id": ids["workflow"],
                "job_id": ids["job"], "process_id": ids["process"], "token_id": ids["token"],
                "connection_id": ids["connection"], "account_id": str(uuid.uuid4()),
                "step_id": ids["step"], "dead_letter_id": 1, "service_id": str(uuid.uuid4()),
                "name": "Transform"}
        before = await snapshot(admin, ids)
        for path, operations in document["paths"].items():
            for method in operations:
                if not WRITE.match(method.upper()):
                    continue
                response = await viewer.request(method.upper(), path.format(**fill), json={})
                assert response.status_code == 403, (method, path, response.text)
        assert await snapshot(admin, ids) == before
        # an editor writes, but cannot hand out tokens
        assert (await editor.post("/v1/projects", json={"name": "by editor"})).status_code == 201
        assert (await editor.post("/v1/tokens", json={"name": "x", "role": "admin"})
                ).status_code == 403
