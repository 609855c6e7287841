"""`make run` on a fresh data folder: the embedded PostgreSQL starts quietly (nothing
printed but what a user needs), the platform answers /healthz, the printed curl line
starts the demo job, the job succeeds, every component's /metrics URL is printed and
answers, no tenant's Http.request reaches the control plane or a function server (only
the demo API's own address is allowed), and Ctrl-C stops everything, the embedded
PostgreSQL included. A port already taken is one line naming a free one."""

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

from stepline_control.onemachine.children import free_port, function_folders
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


def read_block(process: subprocess.Popen, lines: list[str]) -> dict[str, str]:
    """The indented `name: url` lines that follow a heading, up to the first other line."""
    found: dict[str, str] = {}
    while True:
        line = process.stdout.readline()
        lines.append(line)
        if not line.startswith("  "):
            return found
        name, _, url = line.strip().rpartition(": ")
        found[name] = url


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
        # a quiet start: no migration-tool lines, no warnings nobody can act on
        assert lines[:-1] == ["Starting the embedded PostgreSQL...\n"], "".join(lines)
        token = read_until(process, "Operator token: ", lines)
        demo_api = read_until(process, "Demo API: ", lines).split()[0]
        assert demo_api == f"http://127.0.0.2:{port}"
        curl = read_until(process, "Start the demo job: ", lines)
        read_until(process, "Metrics (Prometheus)", lines)
        metrics = read_block(process, lines)
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
        expected = {"control plane", "relay", *function_folders(ROOT)}
        assert set(metrics) == expected | ({"dispatcher"} if broker else set()), metrics
        for name, url in metrics.items():
            scraped = httpx.get(url)
            assert scraped.status_code == 200 and "stepline_" in scraped.text, (name, url)
        # the demo API's address is the only one tenants may call on this machine
        for target in (f"{base}/healthz", metrics["Transform"]):
            failed = run_one_call(base, auth, target)
            assert "private, loopback or link-local" in failed["message"], failed
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


def run_one_call(base: str, auth: dict[str, str], url: str) -> dict:
    """Run a one-step workflow that GETs ``url``; the error of its Http.request step."""
    projects = httpx.get(f"{base}/v1/projects", headers=auth).json()["items"]
    created = httpx.post(f"{base}/v1/workflows", headers=auth, json={
        "project_id": projects[0]["id"], "name": f"reach {url}", "steps": [
            {"key": "start", "function": "Manual", "next": "call"},
            {"key": "call", "function": "Http.request", "config": {"url": url},
             "output": None}]})
    assert created.status_code == 201, created.text
    started = httpx.post(f"{base}/v1/workflows/{created.json()['id']}/jobs", headers=auth,
                         json={"payload": {}})
    job_url = f"{base}/v1/jobs/{started.json()['id']}"
    eventually(lambda: httpx.get(job_url, headers=auth).json()["status"] != "running", 60,
               f"the call to {url} to end")
    assert httpx.get(job_url, headers=auth).json()["status"] == "failed"
    processes = httpx.get(f"{job_url}/processes", headers=auth).json()["items"]
    return next(p for p in processes if p["step_key"] == "call")["error"]


def test_a_taken_port_is_one_line_naming_a_free_one(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("STEPLINE_")}
        env["STEPLINE_DATA_DIR"] = str(tmp_path / "data")
        result = subprocess.run(
            [sys.executable, "-m", "stepline_control.cli", "run", "--port", str(port)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=START_TIMEOUT_S)
    assert result.returncode != 0
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    prefix = f"port {port} is in use: make run PORT="
    assert line.startswith(prefix), result.stderr
    suggested = int(line[len(prefix):])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", suggested))  # free, as it says
    assert not (tmp_path / "data" / "postgres").exists()  # nothing was started


def test_make_run_takes_the_port_from_port() -> None:
    dry = subprocess.run(["make", "-n", "run", "PORT=8123"], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert "stepline-control run --port 8123" in dry.stdout
