"""docs/tutorial.md, run as a reader runs it: every ```sh block, in order, in one bash
session, against a platform started as `make run` starts it (`stepline-control run` on a
fresh data folder, embedded PostgreSQL included), with STEPLINE_URL, TOKEN and DEMO_API
taken from what it printed. A block followed by a ```json expected block must print the same JSON
values; by a ```text expected block, the same text. ```shell blocks (`make run`, the
exports) are the reader's part and are not run."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_make_run import read_until

from stepline_control.onemachine.children import free_port

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "tutorial.md"
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
MARKER = "@@tutorial block {}@@"
PARTNER = ("127.0.0.2", 8099)  # the tutorial's stand-in for a partner's service
SCRIPT_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0


@dataclass
class Block:
    number: int
    command: str
    expect: str | None = None  # "json" or "text"
    expected: str = ""


def blocks(markdown: str) -> list[Block]:
    """The ```sh blocks in order, each with the expected output that follows it."""
    found: list[Block] = []
    previous = None
    for fence in FENCE.finditer(markdown):
        info, body = fence.group(1).split(), fence.group(2)
        if info[:1] == ["sh"]:
            found.append(Block(number=len(found) + 1, command=body))
        elif info[1:2] == ["expected"]:
            assert previous == "sh" and info[0] in ("json", "text"), (
                f"an expected block must be json or text and follow a ```sh block: {body!r}")
            found[-1].expect, found[-1].expected = info[0], body
        previous = info[0] if info else None
    return found


def script(steps: list[Block]) -> str:
    """One bash script: strict, each block's output after a marker of its own."""
    parts = ["set -euo pipefail"]
    for block in steps:
        parts += [f"printf '\\n{MARKER.format(block.number)}\\n'", block.command]
    return "\n".join(parts) + "\n"


def outputs(stdout: str) -> dict[int, str]:
    """Each block's output, by block number."""
    pieces = re.split(r"^" + re.escape(MARKER).replace(r"\{\}", r"(\d+)") + r"$",
                      stdout, flags=re.MULTILINE)
    return {int(number): text.strip() for number, text in zip(pieces[1::2], pieces[2::2],
                                                              strict=True)}


def json_values(text: str) -> list[Any]:
    """The JSON values of a text, one after another (jq prints a stream)."""
    decoder, values, position = json.JSONDecoder(), [], 0
    text = text.strip()
    while position < len(text):
        value, position = decoder.raw_decode(text, position)
        values.append(value)
        while position < len(text) and text[position].isspace():
            position += 1
    return values


def test_the_tutorial_is_well_formed() -> None:
    steps = blocks(TUTORIAL.read_text())
    assert len(steps) >= 15
    assert sum(block.expect is not None for block in steps) >= 10
    for block in steps:
        if block.expect == "json":
            assert json_values(block.expected), f"block {block.number}: no JSON expected"
    assert "$STEPLINE_URL" in steps[0].command + steps[1].command
    assert "$TOKEN" in steps[0].command


class Platform:
    """`stepline-control run`, as `make run` runs it, its output read on a thread."""

    def __init__(self, data_dir: Path, **settings: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STEPLINE_")}
        env["STEPLINE_DATA_DIR"] = str(data_dir)
        env |= settings  # what the page's own start command sets
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stepline_control.cli", "run", "--port", str(self.port)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.lines: list[str] = []
        self.url = self.token = self.demo_api = ""
        self._reader = threading.Thread(target=self._drain, daemon=True)

    def wait_ready(self) -> None:
        self.url = read_until(self.process, "Stepline is running at ", self.lines).split()[0]
        self.token = read_until(self.process, "Operator token: ", self.lines)
        self.demo_api = read_until(self.process, "Demo API: ", self.lines).split()[0]
        # keep reading, or the platform blocks once the pipe is full of its logs
        self._reader.start()

    def _drain(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._reader.is_alive():
            self._reader.join(5)
        self.process.stdout.close()


def run_script(text: str, *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """bash in a session of its own, so what it left running (the tutorial's partner
    server) goes with it whatever happens."""
    path = cwd / "tutorial.sh"
    path.write_text(text)
    process = subprocess.Popen(["bash", str(path)], cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=SCRIPT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def check(block: Block, printed: str) -> None:
    if block.expect == "json":
        assert json_values(printed) == json_values(block.expected), (
            f"block {block.number} printed:\n{printed}\nthe tutorial says:\n{block.expected}")
    elif block.expect == "text":
        assert printed == block.expected.strip(), (
            f"block {block.number} printed:\n{printed}\nthe tutorial says:\n{block.expected}")


@pytest.mark.slow
def test_every_command_of_the_tutorial_works_as_the_text_says(tmp_path: Path) -> None:
    with socket.socket() as probe:
        if probe.connect_ex(PARTNER) == 0:
            pytest.fail(f"{PARTNER}, the tutorial's partner service, is taken")
    steps = blocks(TUTORIAL.read_text())
    workdir = tmp_path / "reader"
    workdir.mkdir()
    platform = Platform(tmp_path / "data")
    try:
        platform.wait_ready()
        env = {k: v for k, v in os.environ.items() if not k.startswith("STEPLINE_")}
        env |= {"STEPLINE_URL": platform.url, "TOKEN": platform.token,
                "DEMO_API": platform.demo_api, "TMPDIR": str(workdir)}
        result = run_script(script(steps), cwd=workdir, env=env)
        printed = outputs(result.stdout)
        if result.returncode != 0:
            failed = max(printed, default=0)
            command = steps[failed - 1].command if failed else "(before the first block)"
            pytest.fail(f"block {failed} failed with {result.returncode}:\n{command}\n"
                        f"stdout:\n{printed.get(failed, '')}\nstderr:\n{result.stderr}\n"
                        f"the platform's last lines:\n{''.join(platform.lines[-30:])}")
        for block in steps:
            check(block, printed[block.number])
        auth = {"Authorization": f"Bearer {platform.token}"}
        jobs = httpx.get(f"{platform.url}/v1/jobs", headers=auth).json()["items"]
        # the demo workflow's job is not started: the tutorial's two jobs, both succeeded
        assert [job["status"] for job in jobs] == ["succeeded", "succeeded"], jobs
    finally:
        platform.stop()
