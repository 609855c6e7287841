"""Services and functions registered from outside, through RabbitMQ as in a cluster: the
relay publishes a service's messages to the queue of the function that serves every
service (Service.call), and a registered function's to the queue it was registered
with, which the relay declares itself; the calls are billed once each."""

from __future__ import annotations

from pathlib import Path

import pytest
from control_plane.cp_support import api, manual_then, project
from market import SERVICE, market

from stepline_relay.topology import platform_functions
from support import all_processes, wait_for_job

from .broker import JOB_TIMEOUT_S, BrokerPlatform, wait_for_log

pytestmark = pytest.mark.slow
TEMPLATE = Path(__file__).resolve().parents[2] / "runtime" / "template"
QUEUE = "Greetings.inbox"  # the registered function's endpoint: a queue, as in a cluster
CALLS = 3


def registration() -> dict:
    return {"name": "Example.greet", "kind": "action", "visibility": "public",
            "config_schema": {"type": "object"}, "endpoint": QUEUE}


async def test_services_and_a_registered_function_run_through_rabbitmq(
        broker_platform: BrokerPlatform, database_url: str) -> None:
    for name in ("Service.call", "Transform"):
        broker_platform.add_function(name)
    broker_platform.add_function(QUEUE, folder=TEMPLATE)  # the dispatcher feeds it that queue
    broker_platform.start_functions()
    relay = broker_platform.start_relay()
    wait_for_log(relay, "topology declared")
    broker_platform.start_dispatcher()
    async with api(database_url) as control:
        m = await market(control)
        assert (await control.operator.post("/v1/functions", json=registration())
                ).status_code == 201
        greet = await m.caller.post("/v1/workflows", json={
            "project_id": await project(m.caller, "greetings"), "name": "greet",
            "steps": manual_then("Example.greet", {})})
        started = [await m.caller.post(f"/v1/workflows/{m.calling['id']}/jobs",
                                       json={"payload": {"email": f"lead{i}@example.com"}})
                   for i in range(CALLS)]
        started.append(await m.caller.post(f"/v1/workflows/{greet.json()['id']}/jobs",
                                           json={"payload": {"name": "Ana"}}))
        jobs = [await wait_for_job(m.caller, s.json()["id"], JOB_TIMEOUT_S) for s in started]
        greeting = {p["step_key"]: p for p in await all_processes(m.caller, jobs[-1]["id"])}
        buyer, acme = ((await m.caller.get("/v1/billing")).json(),
                       (await m.publisher.get("/v1/billing")).json())
    assert [j["status"] for j in jobs] == ["succeeded"] * (CALLS + 1)
    assert greeting["work"]["output"] == {"message": "Hello, Ana!"}
    assert {"function": SERVICE, "kind": "service", "count": CALLS, "unit_price": "0.250000",
            "amount": "0.750000"} in buyer["lines"]
    assert acme["served"] == [{"service": SERVICE, "calls": CALLS, "unit_price": "0.250000",
                               "revenue": "0.750000"}]
    # the relay declared the registered function's queue with the built-in ones
    wait_for_log(relay, f"topology declared: {len(platform_functions()) + 1} classic queues")
    queues = broker_platform.vhost.queue_depths()
    assert {"Service.call", QUEUE} <= set(queues) and SERVICE not in queues
