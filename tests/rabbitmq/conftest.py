"""Fixtures of the RabbitMQ tests: this machine's broker, reached over AMQP and managed
with ``rabbitmqctl``. Unreachable, it skips the tests locally and fails them in CI
(``CI=true``), as ``tests/conftest.py`` does for PostgreSQL. Each test gets a vhost of
its own (or, for the quick ones, a queue-name prefix in a shared one), deleted at the
end; the broker itself is left running."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import unavailable

from .broker import AMQP_URL, BrokerPlatform, Vhost, rabbitmqctl

LOG_TAIL_CHARS = 3000


def _reachable() -> str | None:
    """Why RabbitMQ cannot be used here, or None."""
    parts = urlsplit(AMQP_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), 2):
            pass
    except OSError as exc:
        return f"RabbitMQ at {parts.hostname}:{parts.port}: {exc}"
    try:
        rabbitmqctl("list_vhosts")
    except (OSError, RuntimeError, TimeoutError) as exc:
        return f"rabbitmqctl: {exc}"
    return None


@pytest.fixture(scope="session")
def rabbitmq() -> str:
    problem = _reachable()
    if problem is not None:
        unavailable(problem)
    return AMQP_URL


@pytest.fixture
def vhost(rabbitmq: str) -> Iterator[Vhost]:
    """A vhost of this test's own: its queues and connections are nobody else's."""
    created = Vhost.create()
    try:
        yield created
    finally:
        created.delete()


@pytest.fixture(scope="session")
def shared_vhost(rabbitmq: str) -> Iterator[Vhost]:
    created = Vhost.create()
    try:
        yield created
    finally:
        created.delete()


@pytest.fixture
def prefix() -> str:
    """A queue-name prefix of this test's own, for tests sharing ``shared_vhost``."""
    return f"t{uuid.uuid4().hex[:8]}."


@pytest.fixture
def broker_platform(database_url: str, vhost: Vhost, tmp_path: Path,
                    request: pytest.FixtureRequest) -> Iterator[BrokerPlatform]:
    running = BrokerPlatform(database_url=database_url, vhost=vhost, log_dir=tmp_path)
    try:
        yield running
    finally:
        running.stop()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            for log in sorted(tmp_path.glob("*.log")):
                print(f"----- {log.name} (tail) -----")
                print(log.read_text(errors="replace")[-LOG_TAIL_CHARS:])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report
