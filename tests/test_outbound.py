"""Http.request's calls out, against a real local server: the SSRF guard refuses
loopback by address and by name unless allow-listed, also after a redirect; the request
goes to the address that was checked; credentials do not follow a redirect elsewhere."""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path
from typing import Any

import pytest

from stepline.catalog import HttpRequestConfig
from stepline.context import Context
from stepline.definition import RetryPolicy, Step
from stepline.net import AddressRefused
from stepline.packet import Packet, ProcessRef, Ref, StepRef, WorkflowRef
from stepline.settings import Settings
from stepline.step import StepRuntime
from support import LocalHttp, Reply, json_reply

ROOT = Path(__file__).resolve().parents[1]


def http_request_handler():
    spec = importlib.util.spec_from_file_location(
        "func_http_request", ROOT / "functions" / "http-request" / "function" / "func.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.HttpRequest()


class Server(LocalHttp):
    """Answers /items with JSON and /away with a redirect to ``redirect_to``; records
    each request's path and headers."""

    def __init__(self, redirect_to: str = "") -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.redirect_to = redirect_to
        super().__init__(self._respond)

    def _respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        self.seen.append((path, headers))
        if path.startswith("/away"):
            return 302, {"location": self.redirect_to}, b""
        return json_reply(200, {"items": [1, 2]})


def context(config: dict[str, Any], allow: str) -> Context:
    packet = Packet(
        payload={},
        account=Ref(id=uuid.uuid4()),
        job=Ref(id=uuid.uuid4()),
        workflow=WorkflowRef(id=uuid.uuid4(), version=1),
        step=StepRef(id=uuid.uuid4(), key="fetch"),
        process=ProcessRef(id=uuid.uuid4()),
    )
    step = Step(
        id=packet.step.id,
        workflow_id=packet.workflow.id,
        key="fetch",
        name=None,
        function="Http.request",
        config=config,
        next_key=None,
        output="single",
        retry=RetryPolicy(),
    )
    handler = http_request_handler()
    runtime = StepRuntime(pool=None, handler=handler, settings=Settings(http_allow_cidrs=allow))
    return Context(packet=packet, step=step, config=HttpRequestConfig.model_validate(config),
                   runtime=runtime), handler


@pytest.fixture
def server():
    running = Server()
    yield running
    running.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_loopback_is_refused_by_address_and_by_name(server: Server, host: str) -> None:
    ctx, handler = context({"url": f"http://{host}:{server.port}/items"}, allow="")
    with pytest.raises(AddressRefused, match="127.0.0.1|::1"):
        await handler.run(ctx)
    assert server.seen == []


async def test_an_allow_listed_network_is_called_at_the_checked_address(server: Server) -> None:
    ctx, handler = context(
        {"url": f"http://localhost:{server.port}/items", "items_path": "items"},
        allow="127.0.0.0/8,::1/128",
    )
    assert await handler.run(ctx) == [1, 2]
    [(path, headers)] = server.seen
    assert path == "/items" and headers["host"] == f"localhost:{server.port}"


async def test_a_redirect_to_a_refused_address_is_refused() -> None:
    server = Server(redirect_to="http://127.0.0.2:9/x")
    try:
        ctx, handler = context(
            {"url": f"http://127.0.0.1:{server.port}/away"}, allow="127.0.0.1/32"
        )
        with pytest.raises(AddressRefused, match="127.0.0.2"):
            await handler.run(ctx)
    finally:
        server.close()


async def test_credentials_do_not_follow_a_redirect_to_another_host() -> None:
    target = Server()
    origin = Server(redirect_to=f"http://localhost:{target.port}/items")
    try:
        ctx, handler = context(
            {
                "url": f"http://127.0.0.1:{origin.port}/away",
                "headers": {"Authorization": "Bearer s3cret", "X-Trace": "1"},
            },
            allow="127.0.0.0/8,::1/128",
        )
        assert await handler.run(ctx) == {"items": [1, 2]}
    finally:
        origin.close()
        target.close()
    assert origin.seen[0][1]["authorization"] == "Bearer s3cret"
    assert "authorization" not in target.seen[0][1] and target.seen[0][1]["x-trace"] == "1"
