"""Services and registered functions through the API: publishing (visible to whom, a
name unique among every function and service, bad input a 422 naming the field with
nothing written), re-pinning, unpublishing, isolation between accounts; operators
registering functions, pricing them and hiding them."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
from cp_support import api, manual_then, project, workflow

ENRICH_SCHEMA = {"type": "object", "required": ["email"],
                 "properties": {"email": {"type": "string"}, "score": {"type": "integer"}}}


async def published(client: httpx.AsyncClient, name: str = "Acme.enrichLead",
                    **fields: Any) -> dict[str, Any]:
    flow = await workflow(client, manual_then(), project_id=await project(client, name))
    body = {"workflow_id": flow["id"], "name": name, "visibility": "public",
            "description": "adds a score to a lead", "input_schema": ENRICH_SCHEMA,
            "price_per_call": "0.25", **fields}
    response = await client.post("/v1/services", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def catalog(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in (await client.get("/v1/functions")).json()["items"]}


def service_step(name: str, config: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return [{"key": "start", "function": "Manual", "next": "call"},
            {"key": "call", "function": name, "config": config or {}, "output": None}]


def rows(database_url: str, sql: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql).fetchall()


async def test_a_public_service_is_in_every_catalog_a_private_one_in_its_owners(
        database_url: str) -> None:
    async with api(database_url) as platform:
        acme, publisher = await platform.account("Acme")
        _, caller = await platform.account("Buyer")
        public = await published(publisher)
        await published(publisher, "Acme.internal", visibility="private")
        theirs, mine = await catalog(caller), await catalog(publisher)
        assert public["version"] == public["workflow_version"] == 1
        assert public["price_per_call"] == "0.250000"
        offer = theirs["Acme.enrichLead"]
        assert offer["kind"] == "service" and offer["account_id"] == acme["id"]
        assert offer["service"] == {"publisher": {"id": acme["id"], "name": "Acme"},
                                    "input_schema": ENRICH_SCHEMA, "price_per_call": "0.250000"}
        assert offer["config_schema"]["properties"]["input"]["required"] == ["email"]
        assert offer["endpoint"] is None  # where the relay delivers is the operator's
        assert "Acme.internal" not in theirs and "Acme.internal" in mine
        own = (await publisher.get("/v1/services")).json()["items"]
        assert [s["name"] for s in own] == ["Acme.enrichLead", "Acme.internal"]
        assert (await caller.get("/v1/services")).json()["items"] == []
        # the caller builds on the public one; the private one is not a function it knows
        project_id = await project(caller, "uses")
        ok = await caller.post("/v1/workflows", json={
            "project_id": project_id, "name": "uses", "steps": service_step(
                "Acme.enrichLead", {"input": {"email": "{{ payload.email }}",
                                              "score": "{{ payload.score }}"}})})
        assert ok.status_code == 201, ok.text
        hidden = await caller.post("/v1/workflows", json={
            "project_id": project_id, "name": "hidden", "steps": service_step("Acme.internal")})
        assert hidden.status_code == 422
        assert {"step": "call", "field": "function",
                "message": "unknown function 'Acme.internal'"} in hidden.json()["error"]["details"]


async def test_a_literal_input_is_checked_against_the_input_schema_when_saved(
        database_url: str) -> None:
    async with api(database_url) as platform:
        _, publisher = await platform.account("Acme")
        await published(publisher)
        response = await publisher.post("/v1/workflows", json={
            "project_id": await project(publisher, "p"), "name": "bad",
            "steps": service_step("Acme.enrichLead", {"input": {"score": "high"}})})
    assert response.status_code == 422
    fields = {(p["field"], p["message"]) for p in response.json()["error"]["details"]}
    assert ("config.input", "'email' is a required property") in fields
    assert ("config.input.score", "'high' is not of type 'integer'") in fields


async def test_a_name_is_unique_among_every_function_and_service(database_url: str) -> None:
    async with api(database_url) as platform:
        _, acme = await platform.account("Acme")
        _, other = await platform.account("Other")
        first = await published(acme)
        flow = await workflow(other, manual_then(), project_id=await project(other, "o"))
        body = {"workflow_id": flow["id"], "visibility": "public", "input_schema": {}}
        taken = await other.post("/v1/services", json={**body, "name": "Acme.enrichLead"})
        builtin = await other.post("/v1/services", json={**body, "name": "Http.request"})
        assert (taken.status_code, builtin.status_code) == (409, 409)
        assert taken.json()["error"]["code"] == "name_taken"
        assert (await acme.delete(f"/v1/services/{first['id']}")).status_code == 204
        again = await other.post("/v1/services", json={**body, "name": "Acme.enrichLead"})
        assert again.status_code == 201, again.text
        assert (await catalog(acme))["Acme.enrichLead"]["account_id"] == again.json()["account_id"]


async def test_bad_input_is_a_422_naming_the_field_and_writes_nothing(database_url: str) -> None:
    async with api(database_url) as platform:
        _, acme = await platform.account("Acme")
        _, other = await platform.account("Other")
        flow = await workflow(acme, manual_then(), project_id=await project(acme, "a"))
        foreign = await workflow(other, manual_then(), project_id=await project(other, "o"))
        good = {"workflow_id": flow["id"], "name": "Acme.x", "visibility": "public"}
        cases = {
            "price_per_call": {**good, "price_per_call": 0.25},
            "price_per_call ": {**good, "price_per_call": "0.1234567"},
            "input_schema": {**good, "input_schema": {"type": "nonsense"}},
            "workflow_id": {**good, "workflow_id": foreign["id"]},
            "name": {**good, "name": "not dotted"},
            "visibility": {**good, "visibility": "secret"},
        }
        for field, body in cases.items():
            response = await acme.post("/v1/services", json=body)
            assert response.status_code == 422, (field, response.text)
            named = [d["field"] for d in response.json()["error"]["details"]]
            assert any(field.strip() in n for n in named), (field, named)
        assert (await acme.get("/v1/services")).json()["items"] == []
    assert rows(database_url, "SELECT count(*) FROM services") == [(0,)]
    assert rows(database_url, "SELECT count(*) FROM functions WHERE kind = 'service'") == [(0,)]


async def test_a_service_is_repinned_and_unpublished_by_its_publisher_only(
        database_url: str) -> None:
    async with api(database_url) as platform:
        _, acme = await platform.account("Acme")
        _, other = await platform.account("Other")
        viewer = await platform.token(acme, "viewer")
        service = await published(acme)
        edited = await acme.put(f"/v1/workflows/{service['workflow_id']}",
                                json={"name": "v2", "steps": manual_then()})
        assert edited.status_code == 200, edited.text
        shown = (await acme.get(f"/v1/services/{service['id']}")).json()
        assert (shown["version"], shown["workflow_version"]) == (1, 2)
        url = f"/v1/services/{service['id']}"
        assert (await acme.patch(url, json={"version": 9})).json()["error"]["details"] == [
            {"field": "version", "message": "the workflow has no version 9"}]
        pinned = await acme.patch(url, json={"version": 2, "price_per_call": "1.5",
                                             "visibility": "private"})
        assert pinned.status_code == 200, pinned.text
        assert (pinned.json()["version"], pinned.json()["price_per_call"]) == (2, "1.500000")
        assert "Acme.enrichLead" not in await catalog(other)
        for method in ("GET", "PATCH", "DELETE"):
            answer = await other.request(method, url, json={} if method == "PATCH" else None)
            assert answer.status_code == 404, (method, answer.text)
        assert (await viewer.delete(url)).status_code == 403
        assert (await acme.delete(url)).status_code == 204
        assert (await acme.get(url)).status_code == 404
        assert "Acme.enrichLead" not in await catalog(acme)


async def test_deleting_the_workflow_unpublishes_its_services(database_url: str) -> None:
    async with api(database_url) as platform:
        _, acme = await platform.account("Acme")
        service = await published(acme)
        assert (await acme.delete(f"/v1/workflows/{service['workflow_id']}")).status_code == 204
        assert (await acme.get(f"/v1/services/{service['id']}")).status_code == 404
        assert "Acme.enrichLead" not in await catalog(acme)


GREET_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["greeting"],
                "properties": {"greeting": {"type": "string", "maxLength": 20}}}


def registration(**fields: Any) -> dict[str, Any]:
    return {"name": "Example.greet", "kind": "action", "visibility": "public",
            "description": "says hello", "config_schema": GREET_SCHEMA,
            "endpoint": "http://127.0.0.1:9/", **fields}


async def test_operators_register_functions_that_definitions_are_checked_against(
        database_url: str) -> None:
    async with api(database_url) as platform:
        _, acme = await platform.account("Acme")
        assert (await acme.post("/v1/functions", json=registration())).status_code == 403
        created = await platform.operator.post("/v1/functions", json=registration())
        assert created.status_code == 201, created.text
        assert created.json()["slug"] == "example-greet"
        assert created.json()["endpoint"] == "http://127.0.0.1:9/"
        again = await platform.operator.post("/v1/functions", json=registration())
        assert again.status_code == 409
        seen = (await catalog(acme))["Example.greet"]
        assert (seen["kind"], seen["config_schema"], seen["endpoint"]) == (
            "action", GREET_SCHEMA, None)
        project_id = await project(acme, "p")
        bad = await acme.post("/v1/workflows", json={
            "project_id": project_id, "name": "w",
            "steps": manual_then("Example.greet", {"greeting": 42})})
        assert bad.status_code == 422
        assert {"step": "work", "field": "config.greeting",
                "message": "42 is not of type 'string'"} in bad.json()["error"]["details"]
        good = await acme.post("/v1/workflows", json={
            "project_id": project_id, "name": "w",
            "steps": manual_then("Example.greet", {"greeting": "Hi"})})
        assert good.status_code == 201, good.text


async def test_a_registration_with_bad_input_is_a_422_naming_the_field(database_url: str) -> None:
    cases = {"config_schema": {"config_schema": {"type": 12}},
             "endpoint": {"endpoint": "ftp://nowhere"},
             "kind": {"kind": "service"},
             "price_per_process": {"price_per_process": 1},
             "name": {"name": "greet"}}
    async with api(database_url) as platform:
        for field, change in cases.items():
            response = await platform.operator.post("/v1/functions", json=registration(**change))
            assert response.status_code == 422, (field, response.text)
            named = [d["field"] for d in response.json()["error"]["details"]]
            assert any(field in n for n in named), (field, named)
    assert rows(database_url, "SELECT count(*) FROM functions WHERE endpoint IS NOT NULL "
                "AND kind <> 'service'") == [(0,)]


async def test_operators_price_and_hide_functions_and_a_restart_keeps_it(
        database_url: str) -> None:
    async with api(database_url) as platform:
        _, acme = await platform.account("Acme")
        await published(acme)
        priced = await platform.operator.patch("/v1/functions/Transform",
                                               json={"price_per_process": "0.002"})
        assert priced.status_code == 200, priced.text
        assert priced.json()["price_per_process"] == "0.002000"
        hidden = await platform.operator.patch("/v1/functions/RdStation.getLeads",
                                               json={"visibility": "private"})
        assert hidden.json()["visibility"] == "private"
        assert (await acme.patch("/v1/functions/Transform",
                                 json={"price_per_process": "1"})).status_code == 403
        assert (await platform.operator.patch("/v1/functions/Nope.nope",
                                              json={})).status_code == 404
        service = await platform.operator.patch("/v1/functions/Acme.enrichLead",
                                                json={"price_per_process": "1"})
        assert (service.status_code, service.json()["error"]["code"]) == (409, "is_a_service")
        bad = await platform.operator.patch("/v1/functions/Transform",
                                            json={"price_per_process": 0.5})
        assert bad.status_code == 422
    async with api(database_url) as platform:  # a restart seeds the catalog again
        seen = await catalog(platform.operator)
        assert seen["Transform"]["price_per_process"] == "0.002000"
        assert seen["RdStation.getLeads"]["visibility"] == "private"
        assert "RdStation.getLeads" not in await catalog((await platform.account("New"))[1])
