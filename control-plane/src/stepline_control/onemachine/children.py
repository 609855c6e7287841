"""Child processes of the one-machine platform: a func-python server per function
folder and the relay, each started with its own environment and probed until ready.
The tests start the very same processes."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from stepline.catalog import CATALOG

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
# exactly what func's host builder runs: func-python serving the folder's `new`, with
# the middleware of the folder's `invoke` (cloudevent or http)
SERVE_FUNCTION = (
    "import sys; sys.path.insert(0, '.'); "
    "from func_python.{invoke} import serve; from function import new; serve(new)"
)
_INVOKE = re.compile(r"^invoke:\s*(\w+)\s*$", re.MULTILINE)


def invoke_of(folder: Path) -> str:
    """The folder's func.yaml ``invoke`` (func's default is http)."""
    found = _INVOKE.search((folder / "func.yaml").read_text())
    return found.group(1) if found else "http"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def repo_root() -> Path:
    """The checkout holding functions/ and migrations/ (cwd first, then this file's)."""
    for start in (Path.cwd(), Path(__file__).resolve()):
        for folder in (start, *start.parents):
            if (folder / "functions").is_dir() and (folder / "migrations").is_dir():
                return folder
    raise FileNotFoundError("cannot find the Stepline checkout (functions/ and migrations/)")


def function_folders(root: Path | None = None) -> dict[str, Path]:
    """Function name -> its folder, for every catalog function that has one."""
    base = (root or repo_root()) / "functions"
    return {
        spec.name: base / spec.slug
        for spec in CATALOG.values()
        if (base / spec.slug / "function" / "func.py").is_file()
    }


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path | None = None
    health_url: str | None = None
    log_path: Path | None = None
    # where it serves Prometheus metrics, when it was asked to
    metrics_url: str | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> Child:
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            # children may cache bytecode: otherwise each one compiles every import again
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            self.process = subprocess.Popen(
                self.argv, env={**env, **self.env}, cwd=self.cwd, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        finally:
            if out is not subprocess.DEVNULL:
                out.close()  # the child holds its own descriptor
        return self

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> Child:
        if self.health_url is None:
            return self
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}")
            try:
                if httpx.get(self.health_url, timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} not ready after {timeout_s}s at {self.health_url}")

    def kill(self) -> None:
        """SIGKILL: no goodbye, as a crash would."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()


def function_child(name: str, folder: Path, *, env: dict[str, str], port: int | None = None,
                   log_dir: Path | None = None, metrics_port: int | None = None) -> Child:
    port = port or free_port()
    metrics = {"STEPLINE_METRICS_ADDRESS": f"127.0.0.1:{metrics_port}"} if metrics_port else {}
    return Child(
        name=name, argv=[sys.executable, "-c", SERVE_FUNCTION.format(invoke=invoke_of(folder))],
        cwd=folder,
        env={**env, **metrics, "LISTEN_ADDRESS": f"127.0.0.1:{port}"},
        health_url=f"http://127.0.0.1:{port}/health/readiness",
        log_path=log_dir / f"{folder.name}.log" if log_dir else None,
        metrics_url=_metrics_url(metrics_port),
    )


def relay_child(*, env: dict[str, str], log_dir: Path | None = None,
                args: list[str] | None = None, metrics_port: int | None = None) -> Child:
    metrics = ["--metrics-port", str(metrics_port)] if metrics_port else []
    return Child(
        name="relay",
        argv=[sys.executable, "-m", "stepline_relay.cli", *(args or []), *metrics], env=env,
        log_path=log_dir / "relay.log" if log_dir else None,
        metrics_url=_metrics_url(metrics_port),
    )


def dispatch_child(function_urls: dict[str, str], *, env: dict[str, str],
                   log_dir: Path | None = None, metrics_port: int | None = None) -> Child:
    """One machine with a broker: the stand-in for the RabbitmqSource adapters, one
    consumer per function queue, also recording what reaches the dead-letter queue."""
    pairs = [f"{name}={url}" for name, url in function_urls.items()]
    metrics = ["--metrics-port", str(metrics_port)] if metrics_port else []
    return Child(
        name="dispatch",
        argv=[sys.executable, "-m", "stepline_relay.onemachine.cli", "--dead-letters", *metrics,
              *pairs],
        env=env, log_path=log_dir / "dispatch.log" if log_dir else None,
        metrics_url=_metrics_url(metrics_port),
    )


def _metrics_url(port: int | None) -> str | None:
    return f"http://127.0.0.1:{port}/metrics" if port else None


def queue_sources_child(queue_url: str, *, env: dict[str, str], log_dir: Path | None = None,
                        args: list[str] | None = None) -> Child:
    """The stand-in for the cluster's RabbitmqSource per Queue step: the platform consumes
    each Queue step's queue and feeds the Queue function."""
    return Child(
        name="queue-sources",
        argv=[sys.executable, "-m", "stepline_relay.onemachine.sources", "--queue-url",
              queue_url, *(args or [])],
        env=env, log_path=log_dir / "queue-sources.log" if log_dir else None,
    )


def url_of(child: Child) -> str:
    return f"http://{child.env['LISTEN_ADDRESS']}/"
