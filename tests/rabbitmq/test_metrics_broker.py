"""The metrics of RabbitMQ mode after real work: the relay publishes a job's message, the
dispatcher POSTs it to a function server; a message that is no Stepline packet is
answered 400, rejected by the dispatcher and recorded from the dead-letter queue by the
relay. Each component's /metrics shows its part."""

from __future__ import annotations

import uuid

import pytest
from metrics_support import scrape

from stepline.metrics import ADDRESS_ENV
from stepline.packet import EVENT_TYPE
from stepline_control.onemachine.children import Child, free_port
from stepline_relay.amqp import Broker, Publisher
from stepline_relay.mapping import to_amqp
from stepline_relay.onemachine.cli import command
from stepline_relay.topology import Topology
from support import control_plane, create_workflow, eventually

from .broker import TEST_DISPATCH, BrokerPlatform, wait_for_job_end

pytestmark = pytest.mark.slow

STEPS = [
    {"key": "start", "function": "Manual", "output": "single", "next": "shape"},
    {"key": "shape", "function": "Transform", "config": {"expression": "{lead: name}"},
     "output": None, "next": None},
]


def start_dispatcher(platform: BrokerPlatform, metrics_port: int) -> None:
    argv = command(platform.function_urls(), options=TEST_DISPATCH, metrics_port=metrics_port)
    dispatcher = Child(name="dispatch", argv=argv, env=platform.amqp_env(),
                       log_path=platform.log_dir / "dispatch.log")
    platform.dispatchers.append(dispatcher.start())


async def publish_no_packet(platform: BrokerPlatform) -> None:
    attributes = {"specversion": "1.0", "id": str(uuid.uuid4()), "type": EVENT_TYPE,
                  "source": "/stepline/test", "datacontenttype": "application/json"}
    broker = Broker(platform.vhost.url, name="test metrics")
    try:
        queue = Topology(functions=("Transform",)).queue("Transform")
        assert await Publisher(broker).publish([(queue, to_amqp(attributes, {"n": 1}))]) == [None]
    finally:
        await broker.close()


async def test_relay_dispatcher_and_function_count_in_rabbitmq_mode(
    broker_platform: BrokerPlatform, database_url: str
) -> None:
    function_port, relay_port, dispatch_port = free_port(), free_port(), free_port()
    broker_platform.add_function("Transform", **{ADDRESS_ENV: f"127.0.0.1:{function_port}"})
    broker_platform.start_functions()
    broker_platform.start_relay("--metrics-port", str(relay_port))
    start_dispatcher(broker_platform, dispatch_port)
    async with control_plane(database_url) as client:
        workflow = await create_workflow(client, STEPS, name="metrics")
        started = await client.post(f"/v1/workflows/{workflow['id']}/jobs",
                                    json={"payload": {"name": "Ada"}})
        assert started.status_code == 201, started.text
    assert await wait_for_job_end(broker_platform, started.json()["id"]) == "succeeded"
    await publish_no_packet(broker_platform)

    relay_url = f"http://127.0.0.1:{relay_port}/metrics"
    eventually(lambda: scrape(relay_url).value("stepline_relay_dead_letters_recorded_total") == 1,
               what="the rejected message recorded from the dead-letter queue")
    relay = scrape(relay_url)
    assert relay.value("stepline_relay_rows_total", result="sent") == 1
    assert relay.value("stepline_relay_rows_claimed_total") == 1

    dispatcher = scrape(f"http://127.0.0.1:{dispatch_port}/metrics")
    assert dispatcher.value("stepline_dispatcher_requests_total", function="Transform",
                            status="200") == 1
    assert dispatcher.value("stepline_dispatcher_requests_total", function="Transform",
                            status="400") == 1
    assert dispatcher.value("stepline_dispatcher_messages_total", function="Transform",
                            result="acked") == 1
    assert dispatcher.value("stepline_dispatcher_messages_total", function="Transform",
                            result="rejected") == 1
    assert dispatcher.value("stepline_dispatcher_retries_total") == 0
    assert dispatcher.value("stepline_dispatcher_request_duration_seconds_count",
                            function="Transform") == 2

    function = scrape(f"http://127.0.0.1:{function_port}/metrics")
    deliveries = "stepline_function_deliveries_total"
    assert function.value(deliveries, result="succeeded", status="200") == 1
    assert function.value(deliveries, result="rejected", status="400") == 1
