"""`make run` on a fresh data folder: the embedded PostgreSQL starts, the platform
answers /healthz, the printed curl line starts the demo job, the job succeeds, and
Ctrl-C stops everything, the embedded PostgreSQL included."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from conftest import unavailable
from rabbitmq.broker import Vhost

from stepline_control.onemachine.children import free_port
from support import eventually

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def require_rabbitmq() -> None:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=2).close()
    except OSError:
        unavailable("RabbitMQ at 127.0.0.1:5672")


START_TIMEOUT_S = 90.0


def read_until(process: subprocess.Popen, prefix: str, lines: list[str]) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError("make run ended early:\n" + "".join(lines))
        lines.append(line)
        if line.startswith(prefix):
            return line[len(prefix) :].strip()
    raise TimeoutError("".join(lines))


def curl_to_request(command: str) -> tuple[str, dict[str, str], str]:
    """The method, headers, body and URL of the printed curl line, run with httpx."""
    words, headers, body = shlex.split(command), {}, ""
    assert words[0] == "curl"
    for flag, value in zip(words, words[1:], strict=False):
        if flag == "-H":
            name, _, content = value.partition(": ")
            headers[name] = content
        elif flag == "-d":
            body = value
    return words[-1], headers, body


@pytest.mark.parametrize("broker", [False, True], ids=["no broker", "rabbitmq"])
def test_make_run_serves_and_the_demo_job_succeeds(tmp_path: Path, broker: bool) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPLINE_")}
    env["STEPLINE_DATA_DIR"] = str(tmp_path / "data")
    vhost = None
    if broker:
        require_rabbitmq()
        vhost = Vhost.create()  # its own vhost: the queues go when the test ends
        env["STEPLINE_AMQP_URL"] = vhost.url
    process = subprocess.Popen(
        [sys.executable, "-m", "stepline_control.cli", "run", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        base = read_until(process, "Stepline is running at ", lines).split()[0]
        token = read_until(process, "Operator token: ", lines)
        curl = read_until(process, "Start the demo job: ", lines)
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        url, headers, body = curl_to_request(curl)
        assert headers["Authorization"] == f"Bearer {token}"
        started = httpx.post(url, headers=headers, content=body)
        assert started.status_code == 201, started.text
        job_url = f"{base}/v1/jobs/{started.json()['id']}"
        auth = {"Authorization": f"Bearer {token}"}
        eventually(
            lambda: httpx.get(job_url, headers=auth).json()["status"] != "running",
            60,
            "the demo job to end",
        )
        job = httpx.get(job_url, headers=auth).json()
        assert job["status"] == "succeeded", job
        assert job["counts"]["succeeded"] == 22  # start, fetch, 20 items saved
        children = psutil.Process(process.pid).children(recursive=True)
        postgres = [
            p
            for p in psutil.process_iter(["cmdline"])
            if str(tmp_path) in " ".join(p.info["cmdline"] or [])
            and "postgres" in " ".join(p.info["cmdline"] or [])
        ]
        assert postgres, "the embedded PostgreSQL should be running"
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0, "".join(lines) + process.stdout.read()
        eventually(
            lambda: not any(
                p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in children + postgres
            ),
            20,
            "every child to stop",
        )
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        if vhost is not None:
            vhost.delete()
