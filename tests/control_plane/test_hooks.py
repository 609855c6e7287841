"""POST /v1/hooks/{step_id}: a Webhook step started through the control plane with an
API token — a CloudEvent or JSON, once per event id, its schema enforced, its account's
only."""

from __future__ import annotations

from cloudevents.core.bindings.http import to_binary_event
from cloudevents.core.v1.event import CloudEvent
from cp_support import api, workflow

HOOK = [{"key": "hook", "function": "Webhook", "output": None,
         "config": {"payload_schema": {"type": "object", "required": ["order"]}}}]


def order_event(event_id: str) -> tuple[dict[str, str], bytes]:
    message = to_binary_event(CloudEvent(attributes={
        "specversion": "1.0", "id": event_id, "type": "shop.order", "source": "/shop",
        "datacontenttype": "application/json"}, data={"order": 1}))
    return message.headers, message.body


async def test_a_cloudevent_twice_starts_one_job(database_url: str) -> None:
    async with api(database_url) as a:
        _, admin = await a.account("shop")
        step_id = (await workflow(admin, HOOK))["steps"][0]["id"]
        headers, body = order_event("e-1")
        first = await admin.post(f"/v1/hooks/{step_id}", headers=headers, content=body)
        again = await admin.post(f"/v1/hooks/{step_id}", headers=headers, content=body)
        assert first.status_code == again.status_code == 202
        assert first.json()["created"] is True and again.json()["created"] is False
        assert again.json()["job_id"] == first.json()["job_id"]
        job = (await admin.get(f"/v1/jobs/{first.json()['job_id']}")).json()
        assert job["status"] == "succeeded" and job["trigger"] == "webhook"


async def test_schema_accounts_and_roles(database_url: str) -> None:
    async with api(database_url) as a:
        _, admin = await a.account("shop")
        _, other = await a.account("other")
        viewer = await a.token(admin, "viewer")
        step_id = (await workflow(admin, HOOK))["steps"][0]["id"]
        bad = await admin.post(f"/v1/hooks/{step_id}", json={"nope": 1})
        assert bad.status_code == 422
        assert bad.json()["error"]["details"][0]["field"] == "payload"
        assert (await admin.post(f"/v1/hooks/{step_id}", content=b"{x",
                                 headers={"content-type": "application/json"})).status_code == 400
        assert (await other.post(f"/v1/hooks/{step_id}", json={"order": 1})).status_code == 404
        assert (await viewer.post(f"/v1/hooks/{step_id}", json={"order": 1})).status_code == 403
        jobs = (await admin.get("/v1/jobs")).json()["items"]
        assert jobs == []


async def test_a_call_that_does_not_parse_is_kept_as_a_dead_letter(database_url: str) -> None:
    async with api(database_url) as a:
        account, admin = await a.account("shop")
        _, other = await a.account("other")
        step_id = (await workflow(admin, HOOK))["steps"][0]["id"]
        not_json = await admin.post(f"/v1/hooks/{step_id}", content=b"{oops",
                                    headers={"content-type": "application/json",
                                             "cookie": "session=s3cr3t", "x-shop": "42"})
        assert not_json.status_code == 400
        no_source = await admin.post(f"/v1/hooks/{step_id}", content=b'{"data": 1}', headers={
            "content-type": "application/cloudevents+json"})
        assert no_source.status_code == 400

        listed = (await admin.get("/v1/dead-letters")).json()["items"]
        assert [d["consumer"] for d in listed] == ["Webhook", "Webhook"]
        assert {d["origin"] for d in listed} == {"api"}
        assert {d["account_id"] for d in listed} == {account["id"]}
        assert "not a valid CloudEvent" in listed[0]["reason"]
        kept = (await admin.get(f"/v1/dead-letters/{listed[1]['id']}")).json()
        assert "not JSON" in kept["reason"] and step_id in kept["reason"]
        assert kept["body"] == "{oops" and kept["headers"]["x-shop"] == "42"
        assert not {"authorization", "cookie"} & set(kept["headers"])
        assert "s3cr3t" not in str(kept) and "Bearer" not in str(kept)
        assert (await other.get("/v1/dead-letters")).json()["items"] == []
        assert (await admin.get("/v1/jobs")).json()["items"] == []
