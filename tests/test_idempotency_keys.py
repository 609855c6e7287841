"""Http.request's idempotency keys, against a real local server: every request but GET
and HEAD carries ``Idempotency-Key: <the delivery's stable key>``, the same on a
redelivery and on a retry attempt of the step for that message and another for another
message; each page of a paginated request its own; renamed or turned off by
``config.idempotency_header``; a key the step sets itself wins."""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from stepline.catalog import HttpRequestConfig
from stepline.context import Context
from stepline.definition import RetryPolicy, Step
from stepline.packet import Packet, ProcessRef, Ref, StepRef, WorkflowRef
from stepline.settings import Settings
from stepline.step import StepRuntime
from support import LocalHttp, Reply, json_reply

ROOT = Path(__file__).resolve().parents[1]
PAGES = 3


def http_request() -> Any:
    spec = importlib.util.spec_from_file_location(
        "func_http_request", ROOT / "functions" / "http-request" / "function" / "func.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.HttpRequest()


class Api(LocalHttp):
    """Records each request's method, path and headers; ``/pages`` has ``PAGES`` pages
    of one item (``?page=1..``)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        super().__init__(self._respond)

    def _respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        self.seen.append((method, path, headers))
        if path.startswith("/pages"):
            page = int(path.rsplit("page=", 1)[1])
            return json_reply(200, {"items": [page] if page <= PAGES else []})
        return json_reply(200, {"ok": True})

    def keys(self, name: str = "idempotency-key") -> list[str | None]:
        return [headers.get(name) for _, _, headers in self.seen]


@pytest.fixture
def api() -> Any:
    running = Api()
    yield running
    running.close()


def delivery(config: dict[str, Any], process_id: uuid.UUID, attempt: int = 1
             ) -> tuple[Context[Any], Any]:
    packet = Packet(
        payload={}, account=Ref(id=uuid.uuid4()), job=Ref(id=uuid.uuid4()),
        workflow=WorkflowRef(id=uuid.uuid4(), version=1),
        step=StepRef(id=uuid.uuid4(), key="send"), process=ProcessRef(id=process_id),
        attempt=attempt)
    step = Step(id=packet.step.id, workflow_id=packet.workflow.id, key="send", name=None,
                function="Http.request", config=config, next_key=None, output="single",
                retry=RetryPolicy())
    handler = http_request()
    runtime = StepRuntime(pool=None, handler=handler,
                          settings=Settings(http_allow_cidrs="127.0.0.0/8"))
    return Context(packet=packet, step=step,
                   config=handler.spec.config.model_validate(step.config),
                   runtime=runtime), handler


async def send(config: dict[str, Any], process_id: uuid.UUID, attempt: int = 1) -> Any:
    ctx, handler = delivery(config, process_id, attempt)
    return await handler.run(ctx)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_a_request_that_changes_something_carries_the_delivery_key(
        api: Api, method: str) -> None:
    config = {"method": method, "url": f"{api.base}/orders", "body": {"n": 1}}
    process, other = uuid.uuid4(), uuid.uuid4()
    await send(config, process)
    await send(config, process)  # a redelivery
    await send(config, process, attempt=2)  # the retry after a temporary error
    await send(config, other)
    assert api.keys() == [str(process)] * 3 + [str(other)]
    assert [m for m, _, _ in api.seen] == [method] * 4


async def test_a_get_carries_no_key(api: Api) -> None:
    await send({"url": f"{api.base}/orders"}, uuid.uuid4())
    assert api.keys() == [None]


async def test_the_header_renamed_turned_off_or_set_by_the_step(api: Api) -> None:
    url, process = f"{api.base}/orders", uuid.uuid4()
    await send({"method": "POST", "url": url, "idempotency_header": "X-Request-Id"}, process)
    await send({"method": "POST", "url": url, "idempotency_header": None}, process)
    await send({"method": "POST", "url": url,
                "headers": {"idempotency-key": "the step's own"}}, process)
    assert api.keys("x-request-id") == [str(process), None, None]
    assert api.keys() == [None, None, "the step's own"]


async def test_each_page_has_its_own_key_the_same_on_a_redelivery(api: Api) -> None:
    config = {"method": "POST", "url": f"{api.base}/pages", "items_path": "items",
              "pagination": {"mode": "page"}}
    process = uuid.uuid4()
    assert await send(config, process) == [1, 2, 3]
    assert await send(config, process) == [1, 2, 3]
    key = str(process)
    pages = [key, f"{key}:2", f"{key}:3", f"{key}:4"]  # the 4th is the empty page
    assert api.keys() == pages + pages


def test_a_header_name_that_is_no_token_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="idempotency_header"):
        HttpRequestConfig(url="/orders", idempotency_header="Idempotency Key")
