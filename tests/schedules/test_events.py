"""The tick is the CloudEvent a Knative PingSource sends, whichever backend sends it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_binary_event

from stepline_control.schedules import objects
from stepline_control.schedules.desired import DesiredSchedule
from stepline_control.schedules.events import object_name, ping_event, tick_data
from stepline_control.schedules.options import ScheduleOptions

from .helpers import Recorder

STEP = uuid.UUID("0b7e3c52-6d0b-4a43-9a1e-2f0c1c1d7e11")
WORKFLOW = uuid.UUID("9d4f3a10-5f5c-4c6e-8b7a-3c2d1e0f9a8b")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def test_a_tick_is_a_binary_mode_ping_event() -> None:
    at = datetime(2025, 3, 1, 9, 30, tzinfo=ZoneInfo("Asia/Kolkata"))
    headers, body = ping_event(STEP, WORKFLOW, at, "stepline", "stepline-x")
    assert {k: v for k, v in headers.items() if k != "ce-id"} == {
        "ce-specversion": "1.0",
        "ce-type": "dev.knative.sources.ping",
        "ce-source": "/apis/v1/namespaces/stepline/pingsources/stepline-x",
        "ce-time": "2025-03-01T04:00:00Z",
        "content-type": "application/json",
    }
    assert uuid.UUID(headers["ce-id"])
    assert json.loads(body) == {"step_id": str(STEP), "workflow_id": str(WORKFLOW)}
    event = from_binary_event(HTTPMessage(headers=headers, body=body))
    assert event.get_time() == at
    assert ping_event(STEP, WORKFLOW, at, "ns", "n")[0]["ce-id"] != headers["ce-id"]


def test_the_body_is_what_the_pingsource_carries() -> None:
    _, body = ping_event(STEP, WORKFLOW, datetime.now(UTC), "ns", "n")
    assert body == tick_data(STEP, WORKFLOW).encode()


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ping_event(STEP, WORKFLOW, datetime(2025, 1, 1), "ns", "n")


def test_object_names_are_dns_labels_that_leave_room_for_jobs() -> None:
    name = object_name(STEP)
    assert name == f"stepline-{STEP}"
    assert DNS_LABEL.match(name) and len(name) <= 52
    assert object_name(str(STEP).upper()) == name


def test_a_cronjob_pod_sends_the_same_event(recorder: Recorder) -> None:
    """The CronJob's container command, run here with sh, date and curl: the scheduled
    minute comes from the Job's name, the rest is ping_event's."""
    if shutil.which("curl") is None or shutil.which("sh") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("sh and curl are needed")
        pytest.skip("sh and curl are needed")
    options = ScheduleOptions(namespace="stepline", function_url=recorder.url)
    schedule = DesiredSchedule(STEP, WORKFLOW, uuid.uuid4(), "*/5 * * * *",
                               "America/Sao_Paulo", paused=False)
    name = object_name(STEP)
    pod = objects.cronjob(name, schedule, options)["spec"]["jobTemplate"]["spec"]["template"]
    command = pod["spec"]["containers"][0]["command"]
    at = datetime(2025, 3, 1, 12, 5, tzinfo=UTC)
    job_name = f"{name}-{int(at.timestamp()) // 60}"  # what the CronJob controller names it
    done = subprocess.run(command, env={"JOB_NAME": job_name, "PATH": os.environ["PATH"]},
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr

    [(headers, body)] = recorder.requests
    expected_headers, expected_body = ping_event(STEP, WORKFLOW, at, "stepline", name,
                                                 event_id=job_name)
    assert body == expected_body
    assert {k: headers[k] for k in expected_headers} == expected_headers
