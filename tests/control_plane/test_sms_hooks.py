"""The Sms trigger through the control plane: ``POST /v1/hooks/{step_id}`` of an Sms step
takes Twilio's inbound-message webhook with no bearer token, signed here by the
``twilio`` package exactly as Twilio signs it; a job per message (the same SMS posted
twice starts one), an empty TwiML answer to both, and a bad signature a 403 that starts
and stores nothing."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode
from xml.etree import ElementTree

import httpx
import psycopg
from cp_support import BASE_URL, api, workflow
from twilio.request_validator import RequestValidator

from stepline import sms

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "twilio-auth-token-of-the-tenant-0"
FIELDS = [("MessageSid", "SM" + "a" * 32), ("AccountSid", SID), ("From", "+5511999990000"),
          ("To", "+5511333330000"), ("Body", "Quero 2 pizzas"), ("NumMedia", "1"),
          ("MediaUrl0", "https://api.twilio.com/media/ME1"),
          ("MediaContentType0", "image/jpeg")]


def twilio_connection(public_url: str | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"account_sid": SID}
    if public_url:
        config["public_url"] = public_url
    return {"name": "sms", "kind": "twilio", "config": config, "secret": {"auth_token": TOKEN}}


def sms_steps() -> list[dict[str, Any]]:
    return [{"key": "sms", "function": "Sms", "config": {"connection": "sms"}, "output": None}]


def signed(url: str, fields: list[tuple[str, str]], token: str = TOKEN) -> dict[str, str]:
    """What Twilio sends: the form, and its signature made by Twilio's own library."""
    params = sms.Form.parse(urlencode(fields).encode())
    return {"content-type": "application/x-www-form-urlencoded",
            "x-twilio-signature": RequestValidator(token).compute_signature(url, params)}


async def post_sms(client: httpx.AsyncClient, step_id: str, fields: list[tuple[str, str]],
                   headers: dict[str, str]) -> httpx.Response:
    return await client.post(f"/v1/hooks/{step_id}", content=urlencode(fields),
                             headers=headers)


def rows(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql).fetchall()


async def sms_workflow(a, connection: dict[str, Any]) -> tuple[Any, dict[str, Any], str]:
    _, client = await a.account("pizzeria")
    assert (await client.post("/v1/connections", json=connection)).status_code == 201
    created = await workflow(client, sms_steps(), name="orders by SMS")
    step_id = created["steps"][0]["id"]
    return client, created, step_id


async def test_a_signed_sms_starts_a_job_and_the_same_sms_again_starts_none(
        database_url: str) -> None:
    async with api(database_url) as a:
        client, created, step_id = await sms_workflow(a, twilio_connection())
        url = f"{BASE_URL}/v1/hooks/{step_id}"
        first = await post_sms(a.anonymous, step_id, FIELDS, signed(url, FIELDS))
        again = await post_sms(a.anonymous, step_id, FIELDS, signed(url, FIELDS))
        step = (await client.get(f"/v1/steps/{step_id}")).json()
        summary = (await client.get(f"/v1/workflows/{created['id']}")).json()
    assert (first.status_code, again.status_code) == (200, 200), first.text
    assert first.headers["content-type"].startswith("text/xml")
    assert first.content == again.content
    root = ElementTree.fromstring(first.content)
    assert root.tag == "Response" and len(root) == 0
    jobs = rows(database_url, "SELECT payload, idempotency_key, trigger_data FROM jobs")
    assert len(jobs) == 1
    payload, key, trigger = jobs[0]
    assert payload == {"from": "+5511999990000", "to": "+5511333330000",
                       "body": "Quero 2 pizzas", "message_sid": "SM" + "a" * 32,
                       "media": [{"url": "https://api.twilio.com/media/ME1",
                                  "content_type": "image/jpeg"}]}
    assert key == "twilio:SM" + "a" * 32 and trigger["account_sid"] == SID
    assert step["url"] == url
    assert step["health"]["state"] == "connected"
    assert (step["health"]["started"], step["health"]["duplicates"]) == (1, 1)
    assert summary["trigger_health"]["started"] == 1


async def test_a_bad_signature_is_a_403_that_starts_and_stores_nothing(
        database_url: str) -> None:
    async with api(database_url) as a:
        _, _, step_id = await sms_workflow(a, twilio_connection())
        url = f"{BASE_URL}/v1/hooks/{step_id}"
        forged = [(k, "Quero 20 pizzas" if k == "Body" else v) for k, v in FIELDS]
        answers = [
            await post_sms(a.anonymous, step_id, forged, signed(url, FIELDS)),  # altered
            await post_sms(a.anonymous, step_id, FIELDS,
                           signed(url, FIELDS, token="not-the-tenants-token")),
            await post_sms(a.anonymous, step_id, FIELDS,
                           {"content-type": "application/x-www-form-urlencoded"}),
            await post_sms(a.anonymous, step_id, FIELDS,  # signed for another step
                           signed(url.replace(step_id[:8], "00000000"), FIELDS)),
        ]
    assert [r.status_code for r in answers] == [403, 403, 403, 403], [r.text for r in answers]
    assert all(r.json()["error"]["code"] == "bad_signature" for r in answers)
    for table in ("jobs", "dead_letters", "trigger_health", "inbox", "usage_daily"):
        assert rows(database_url, f"SELECT * FROM {table}") == [], table


async def test_behind_a_proxy_the_public_url_is_what_is_checked(database_url: str) -> None:
    public = "https://sms.example.com/stepline"
    async with api(database_url) as a:
        _, _, step_id = await sms_workflow(a, twilio_connection(public_url=public))
        reached = f"{BASE_URL}/v1/hooks/{step_id}"
        given = f"{public}/v1/hooks/{step_id}"
        refused = await post_sms(a.anonymous, step_id, FIELDS, signed(reached, FIELDS))
        accepted = await post_sms(a.anonymous, step_id, FIELDS, signed(given, FIELDS))
    assert (refused.status_code, accepted.status_code) == (403, 200)


async def test_a_refused_start_is_kept_as_a_dead_letter_of_the_step(database_url: str) -> None:
    async with api(database_url) as a:
        client, created, step_id = await sms_workflow(a, twilio_connection())
        assert (await client.post(f"/v1/workflows/{created['id']}/pause")).status_code == 200
        url = f"{BASE_URL}/v1/hooks/{step_id}"
        answer = await post_sms(a.anonymous, step_id, FIELDS, signed(url, FIELDS))
        health = (await client.get(f"/v1/steps/{step_id}")).json()["health"]
    assert answer.status_code == 409, answer.text
    assert rows(database_url, "SELECT * FROM jobs") == []
    (reason, event_id), = rows(database_url, "SELECT reason, event_id FROM dead_letters")
    assert "paused" in reason and event_id == f"{step_id}:twilio:SM{'a' * 32}"
    assert health["state"] == "idle" and health["dead_letters"] == 1


async def test_a_webhook_step_still_needs_a_bearer_token(database_url: str) -> None:
    async with api(database_url) as a:
        _, client = await a.account("hooks")
        created = await workflow(client, [{"key": "in", "function": "Webhook", "output": None}])
        step_id = created["steps"][0]["id"]
        anonymous = await a.anonymous.post(f"/v1/hooks/{step_id}", json={"a": 1})
        with_token = await client.post(f"/v1/hooks/{step_id}", json={"a": 1})
        step = (await client.get(f"/v1/steps/{step_id}")).json()
    assert (anonymous.status_code, with_token.status_code) == (401, 202)
    assert step["url"].endswith(f"/v1/hooks/{step_id}") and step["health"] is None
