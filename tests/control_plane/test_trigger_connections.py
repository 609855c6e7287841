"""The connection kinds of the triggers — ``amqp`` (Queue), ``imap`` (Email), ``twilio``
(Sms): each stored with its config shown and its secret sealed and never shown, each
refused with a 422 naming the field when it is wrong."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from cp_support import api

from stepline.secrets import SecretBox
from support import SECRET_KEY

SID = "AC" + "0123456789abcdef" * 2


async def test_each_trigger_kind_is_stored_with_its_secret_sealed(database_url: str) -> None:
    password, token = f"pw-{uuid.uuid4().hex}", f"tok-{uuid.uuid4().hex}"
    bodies = [
        {"name": "broker", "kind": "amqp", "config": {"host": "mq.example.com", "vhost": "shop"},
         "secret": {"user": "shop", "password": password}},
        {"name": "mail", "kind": "imap", "config": {"host": "imap.example.com", "tls": "starttls"},
         "secret": {"user": "orders@example.com", "password": password}},
        {"name": "sms", "kind": "twilio",
         "config": {"account_sid": SID, "public_url": "https://stepline.example.com"},
         "secret": {"auth_token": token}},
    ]
    async with api(database_url) as a:
        _, client = await a.account("triggers")
        created = [await client.post("/v1/connections", json=body) for body in bodies]
        assert [r.status_code for r in created] == [201, 201, 201], [r.text for r in created]
        listed = (await client.get("/v1/connections")).text
    configs = {r.json()["kind"]: r.json()["config"] for r in created}
    assert configs["amqp"] == {"host": "mq.example.com", "port": 5672, "vhost": "shop",
                               "tls": False}
    assert configs["imap"] == {"host": "imap.example.com", "port": 143, "tls": "starttls"}
    assert configs["twilio"]["public_url"] == "https://stepline.example.com"
    for text in [listed, *(r.text for r in created)]:
        assert password not in text and token not in text
    with psycopg.connect(database_url) as conn:
        rows = dict(conn.execute("SELECT kind, secret FROM connections").fetchall())
    box = SecretBox(SECRET_KEY)
    assert box.open(rows["amqp"]) == {"user": "shop", "password": password}
    assert box.open(rows["twilio"]) == {"auth_token": token}


@pytest.mark.parametrize(("config", "port"), [
    ({"host": "mq", "tls": True}, 5671), ({"host": "mq", "port": 15672}, 15672)])
async def test_an_amqp_port_follows_tls_unless_given(database_url: str, config: dict[str, Any],
                                                    port: int) -> None:
    async with api(database_url) as a:
        _, client = await a.account("ports")
        response = await client.post("/v1/connections", json={
            "name": "mq", "kind": "amqp", "config": config,
            "secret": {"user": "u", "password": "p"}})
    assert response.status_code == 201, response.text
    assert response.json()["config"]["port"] == port


@pytest.mark.parametrize(("body", "field"), [
    ({"kind": "amqp", "config": {"host": "mq"}}, "secret"),
    ({"kind": "amqp", "config": {"host": "mq", "password": "p"},
      "secret": {"user": "u", "password": "p"}}, "password"),
    ({"kind": "imap", "config": {"host": "imap", "tls": "tls1.0"},
      "secret": {"user": "u", "password": "p"}}, "tls"),
    ({"kind": "imap", "config": {"host": "imap", "port": 70000},
      "secret": {"user": "u", "password": "p"}}, "port"),
    ({"kind": "twilio", "config": {"account_sid": "not-a-sid"},
      "secret": {"auth_token": "t"}}, "account_sid"),
    ({"kind": "twilio", "config": {"account_sid": SID, "public_url": "ftp://x"},
      "secret": {"auth_token": "t"}}, "public_url"),
    ({"kind": "twilio", "config": {"account_sid": SID}, "secret": {"token": "t"}}, "token"),
])
async def test_a_wrong_trigger_connection_is_a_422_naming_the_field(
        database_url: str, body: dict[str, Any], field: str) -> None:
    async with api(database_url) as a:
        _, client = await a.account("wrong")
        response = await client.post("/v1/connections", json={"name": "c", **body})
        assert response.status_code == 422, response.text
        assert field in response.text
        assert (await client.get("/v1/connections")).json()["items"] == []
