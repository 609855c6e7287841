"""What the control plane can tell about a connection without resolving anything: a
`postgres` connection to a unix socket, to several hosts, or with a libpq key that could
point it elsewhere is refused at creation with a 422 naming the field. (Where a name
leads is the runtime's guard's to judge: DNS can change; see tests/test_database_guard.)"""

from __future__ import annotations

from typing import Any

import pytest
from cp_support import api

from stepline.conninfo import CONNINFO_KEYS
from stepline_control.schemas.connections import PostgresConfig

TARGET = {"port": 5432, "dbname": "stepline", "user": "postgres"}


def postgres(**config: Any) -> dict[str, Any]:
    return {"name": "target", "kind": "postgres", "config": {**TARGET, **config},
            "secret": {"password": "x"}}


REFUSED = {
    "socket folder": ({"host": "/var/run/postgresql"}, "config.host", "unix socket"),
    "abstract socket": ({"host": "@stepline"}, "config.host", "unix socket"),
    "several hosts": ({"host": "db.example,127.0.0.1"}, "config.host", "several hosts"),
    "not a host": ({"host": "db example"}, "config.host", "not a host name"),
    "hostaddr": ({"host": "db.example", "hostaddr": "127.0.0.1"}, "config.hostaddr", ""),
    "service": ({"host": "db.example", "service": "platform"}, "config.service", ""),
    "passfile": ({"host": "db.example", "passfile": "/root/.pgpass"}, "config.passfile", ""),
}


@pytest.mark.parametrize("config,field,words", REFUSED.values(), ids=REFUSED.keys())
async def test_a_connection_that_could_reach_the_platform_is_refused_naming_the_field(
    database_url: str, config: dict[str, Any], field: str, words: str
) -> None:
    async with api(database_url) as a:
        _, tenant = await a.account("attacker")
        refused = await tenant.post("/v1/connections", json=postgres(**config))
        listed = (await tenant.get("/v1/connections")).json()["items"]
    assert refused.status_code == 422, refused.text
    details = refused.json()["error"]["details"]
    assert [d["field"].split(".postgres.", 1)[-1] for d in details] == [field]
    assert words in details[0]["message"]
    assert listed == []


async def test_a_network_host_is_stored(database_url: str) -> None:
    async with api(database_url) as a:
        _, tenant = await a.account("customer")
        for i, host in enumerate(("db.example.com", "10.0.0.5", "2001:db8::5")):
            created = await tenant.post("/v1/connections",
                                        json={**postgres(host=host), "name": f"c{i}"})
            assert created.status_code == 201, created.text


def test_the_api_and_the_runtime_allow_the_same_libpq_keys() -> None:
    assert set(PostgresConfig.model_fields) == CONNINFO_KEYS
