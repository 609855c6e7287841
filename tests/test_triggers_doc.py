"""docs/triggers.md, run as a reader runs it (the way tests/test_tutorial.py runs the
tutorial): every ```sh block in one bash session against a platform started as `make
run` starts it, each expected block compared. The reader's RabbitMQ is this machine's,
in a vhost of the test's own; the Dovecot is the one the page itself starts, on a free
port."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import test_tutorial
from rabbitmq.broker import Vhost
from rabbitmq.conftest import rabbitmq  # noqa: F401 (the fixture reader_vhost needs)
from test_tutorial import Platform, blocks, check, outputs, run_script, script
from triggers.dovecot import why_unusable

from stepline_control.onemachine.children import free_port

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "triggers.md"
# the page waits for a queue to drain, a mailbox to be polled and a server to fail
SCRIPT_TIMEOUT_S = 300.0


@pytest.fixture
def reader_vhost(rabbitmq: str) -> Iterator[Vhost]:  # noqa: F811
    """The reader's RabbitMQ vhost: one of this test's own."""
    created = Vhost.create()
    try:
        yield created
    finally:
        created.delete()


def test_the_page_is_well_formed() -> None:
    steps = blocks(PAGE.read_text())
    assert len(steps) >= 12
    assert sum(block.expect is not None for block in steps) >= 9


def stop_dovecot(port: int) -> None:
    """The page's Dovecot, if the page did not get as far as stopping it: found by the
    config it was started with (this test's port), killed by its pid."""
    for process in psutil.process_iter(["pid", "cmdline"]):
        line = process.info["cmdline"] or []
        config = next((Path(a) for a in line if a.startswith("/tmp/stepline-try.")), None)
        if config and config.is_file() and f"port = {port}\n" in config.read_text():
            with contextlib.suppress(psutil.Error):
                process.kill()


@pytest.mark.slow
def test_every_command_of_the_triggers_page_works_as_the_text_says(
        tmp_path: Path, reader_vhost: Vhost, monkeypatch: pytest.MonkeyPatch) -> None:
    if (problem := why_unusable()) is not None:
        pytest.skip(problem)
    monkeypatch.setattr(test_tutorial, "SCRIPT_TIMEOUT_S", SCRIPT_TIMEOUT_S)
    imap_port = free_port()
    steps = blocks(PAGE.read_text())
    workdir = tmp_path / "reader"
    workdir.mkdir()
    # as the page starts it: the local broker and mailbox allowed to tenants' connections
    platform = Platform(tmp_path / "data", STEPLINE_HTTP_ALLOW_CIDRS="127.0.0.1/32")
    try:
        platform.wait_ready()
        env = {k: v for k, v in os.environ.items() if not k.startswith("STEPLINE_")}
        env |= {"STEPLINE_URL": platform.url, "TOKEN": platform.token, "TMPDIR": str(workdir),
                "PY": sys.executable, "AMQP_VHOST": reader_vhost.name, "IMAP_PORT": str(imap_port)}
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
        jobs = httpx.get(f"{platform.url}/v1/jobs?limit=100", headers=auth).json()["items"]
        # three orders from the queue, one mail, one SMS, one form: each exactly once
        assert sorted(job["trigger"] for job in jobs) == [
            "email", "manual", "queue", "queue", "queue", "sms"], jobs
    finally:
        platform.stop()
        stop_dovecot(imap_port)
