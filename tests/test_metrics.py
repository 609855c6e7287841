"""Each component's /metrics after real work on one machine (the relay over HTTP, a
function server under func-python, this machine's PostgreSQL): two jobs, one that
succeeds and one whose step fails, move the function's and the relay's counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from metrics_support import Scrape, scrape

from stepline.metrics import ADDRESS_ENV
from stepline_control.onemachine.children import free_port
from support import Platform, control_plane, create_workflow, eventually, wait_for_job

pytestmark = pytest.mark.slow


def shape_steps(expression: str) -> list[dict[str, Any]]:
    return [
        {"key": "start", "function": "Manual", "output": "single", "next": "shape"},
        {"key": "shape", "function": "Transform", "config": {"expression": expression},
         "output": None, "next": None},
    ]


async def run_jobs(database_url: str) -> list[str]:
    """A job that succeeds, then one whose Transform fails for good (abs of a string)."""
    statuses = []
    async with control_plane(database_url) as client:
        for name, expression in (("fine", "{lead: name}"), ("broken", "abs(name)")):
            workflow = await create_workflow(client, shape_steps(expression), name=name)
            started = await client.post(f"/v1/workflows/{workflow['id']}/jobs",
                                        json={"payload": {"name": "Ada"}})
            assert started.status_code == 201, started.text
            statuses.append((await wait_for_job(client, started.json()["id"]))["status"])
    return statuses


async def test_a_function_and_the_relay_count_what_they_did(database_url: str,
                                                            tmp_path: Path) -> None:
    running = Platform(database_url, ["Transform"], tmp_path)
    function_port, relay_port = free_port(), free_port()
    running.functions["Transform"].env[ADDRESS_ENV] = f"127.0.0.1:{function_port}"
    try:
        running.start_functions()
        running.start_relay("--metrics-port", str(relay_port))
        assert await run_jobs(database_url) == ["succeeded", "failed"]

        function = scrape(f"http://127.0.0.1:{function_port}/metrics")
        deliveries = "stepline_function_deliveries_total"
        assert function.value(deliveries, function="Transform", result="succeeded",
                              status="200") == 1
        assert function.value(deliveries, function="Transform", result="failed",
                              status="200") == 1
        assert function.value("stepline_function_delivery_duration_seconds_count",
                              function="Transform") == 2
        assert function.label_names() <= {"function", "result", "status", "le"}

        relay_url = f"http://127.0.0.1:{relay_port}"
        # the relay marks a row sent after the function answered: a moment after the job
        eventually(lambda: sent(scrape(f"{relay_url}/metrics")) == 2, what="two rows sent")
        relay = scrape(f"{relay_url}/metrics")
        assert relay.value("stepline_relay_rows_claimed_total") == 2
        assert relay.value("stepline_relay_rows_total", result="dead") == 0
        assert relay.value("stepline_relay_publish_duration_seconds_count") >= 1
        # read from the database at scrape time: nothing waits any more
        assert relay.value("stepline_outbox_backlog") == 0
        assert "stepline_outbox_oldest_due_age_seconds" in relay.names()
        assert httpx.get(f"{relay_url}/healthz", timeout=10).status_code == 200
    finally:
        running.stop()


def sent(relay: Scrape) -> float:
    return relay.value("stepline_relay_rows_total", result="sent")
