"""Http.request's calls out, against real local servers: the SSRF guard refuses
loopback by address and by name unless allow-listed, also after a redirect; the request
goes to the address that was checked; a connection's credentials go only to its
origin — never through an absolute URL, a redirect or a pagination link elsewhere, never
into an error message; the environment (proxy variables) does not steer a call, and no
cookie outlives a call."""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path
from typing import Any

import pytest

from stepline.catalog import HttpRequestConfig
from stepline.context import Context
from stepline.db import create_pool
from stepline.definition import RetryPolicy, Step
from stepline.errors import PermanentError
from stepline.net import AddressRefused
from stepline.packet import Packet, ProcessRef, Ref, StepRef, WorkflowRef
from stepline.settings import Settings
from stepline.step import StepRuntime
from support import SECRET_KEY, LocalHttp, Reply, Tenant, json_reply

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


# --- a connection's credentials go only to its origin --------------------------------

TOKEN, API_KEY, COOKIE = "tok-s3cret-1", "key-s3cret-2", "session=s3cret-3"
SECRETS = (TOKEN, API_KEY, "s3cret-3")


class Api(LocalHttp):
    """Answers every path with JSON and records each request; ``routes`` maps a path
    prefix to a reply (a redirect, a page with a next link, an error echoing headers)."""

    def __init__(self, routes: dict[str, Any] | None = None) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.routes = routes or {}
        super().__init__(self._respond)

    def _respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        self.seen.append((path, headers))
        for prefix, reply in self.routes.items():
            if path.startswith(prefix):
                return reply(headers) if callable(reply) else reply
        return json_reply(200, {"items": [1, 2]})

    def credentials_seen(self) -> list[str]:
        return [h for _, headers in self.seen for h in ("authorization", "x-api-key", "cookie")
                if h in headers]


@pytest.fixture
async def runtime(database_url: str):
    pool = create_pool(database_url, min_size=0, max_size=2)
    await pool.open()
    settings = Settings(secret_key=SECRET_KEY, http_allow_cidrs="127.0.0.0/8,::1/128")
    try:
        yield StepRuntime(pool=pool, handler=http_request_handler(), settings=settings)
    finally:
        await pool.close()


@pytest.fixture
def apis():
    """The connection's own API, and an attacker's on another origin."""
    own, other = Api(), Api()
    yield own, other
    own.close()
    other.close()


def with_api_connection(database_url: str, base_url: str | None) -> Tenant:
    tenant = Tenant(database_url)
    tenant.store("api", "http", {"base_url": base_url} if base_url else {},
                 {"token": TOKEN, "headers": {"X-Api-Key": API_KEY, "Cookie": COOKIE}})
    return tenant


ELSEWHERE = {
    "absolute URL": "http://127.0.0.1:{other}/steal",
    "scheme-relative URL": "//127.0.0.1:{other}/steal",
    "same host, another port": "http://127.0.0.1:{other}/api/items",
    "same port, another host name": "http://localhost:{own}/api/items",
    "same host and port, another scheme": "https://127.0.0.1:{own}/api/items",
}


@pytest.mark.parametrize("url", ELSEWHERE.values(), ids=ELSEWHERE.keys())
async def test_a_url_outside_the_connections_origin_is_refused_before_any_call(
    database_url: str, runtime: StepRuntime, apis, url: str
) -> None:
    own, other = apis
    tenant = with_api_connection(database_url, f"{own.base}/api/")
    config = {"connection": "api", "url": url.format(own=own.port, other=other.port)}
    with pytest.raises(PermanentError, match=r"not at the origin of connection 'api'"):
        await tenant.run(runtime, config)
    assert own.seen == [] and other.seen == []


async def test_a_path_under_the_origin_carries_every_credential(
    database_url: str, runtime: StepRuntime, apis
) -> None:
    own, _ = apis
    tenant = with_api_connection(database_url, f"{own.base}/api/")
    assert await tenant.run(runtime, {"connection": "api", "url": "items"}) == {"items": [1, 2]}
    [(path, headers)] = own.seen
    assert path == "/api/items"
    assert headers["authorization"] == f"Bearer {TOKEN}" and headers["x-api-key"] == API_KEY
    assert headers["cookie"] == COOKIE


async def test_a_redirect_to_another_origin_carries_no_credential(
    database_url: str, runtime: StepRuntime, apis
) -> None:
    own, other = apis
    own.routes["/api/away"] = (302, {"location": f"{other.base}/landing"}, b"")
    tenant = with_api_connection(database_url, f"{own.base}/api/")
    config = {"connection": "api", "url": "away", "headers": {"Authorization": "Bearer mine"}}
    assert await tenant.run(runtime, config) == {"items": [1, 2]}
    assert len(own.credentials_seen()) == 3
    assert other.seen and other.credentials_seen() == []


async def test_a_next_link_to_another_origin_carries_no_credential(
    database_url: str, runtime: StepRuntime, apis
) -> None:
    own, other = apis
    own.routes["/api/page1"] = json_reply(200, {"items": [1], "next": f"{other.base}/page2"})
    other.routes["/page2"] = json_reply(200, {"items": [2]})
    tenant = with_api_connection(database_url, f"{own.base}/api/")
    config = {"connection": "api", "url": "page1", "items_path": "items",
              "pagination": {"mode": "next_link", "next_path": "next"}}
    assert await tenant.run(runtime, config) == [1, 2]
    assert len(own.credentials_seen()) == 3 and other.credentials_seen() == []


async def test_a_secret_without_a_base_url_goes_nowhere(
    database_url: str, runtime: StepRuntime, apis
) -> None:
    own, _ = apis
    tenant = with_api_connection(database_url, None)
    with pytest.raises(PermanentError, match="base_url"):
        await tenant.run(runtime, {"connection": "api", "url": f"{own.base}/items"})
    assert own.seen == []


async def test_an_error_echoing_the_request_shows_no_secret(
    database_url: str, runtime: StepRuntime, apis
) -> None:
    own, _ = apis
    own.routes["/api/denied"] = lambda headers: json_reply(401, {"you sent": headers})
    tenant = with_api_connection(database_url, f"{own.base}/api/")
    with pytest.raises(PermanentError) as failed:
        await tenant.run(runtime, {"connection": "api", "url": "denied"})
    assert "401" in str(failed.value)
    assert not any(secret in text for secret in SECRETS for text in chain_of(failed.value))


@pytest.mark.parametrize("value", ["line\nbreak-s3cret", "nön-äscii-s3cret", "nul\x00-s3cret"])
async def test_a_secret_header_http_cannot_carry_is_refused_without_its_value(
    database_url: str, runtime: StepRuntime, apis, value: str
) -> None:
    own, _ = apis
    tenant = Tenant(database_url)
    tenant.store("api", "http", {"base_url": own.base}, {"headers": {"X-Api-Key": value}})
    with pytest.raises(PermanentError, match="X-Api-Key") as refused:
        await tenant.run(runtime, {"connection": "api", "url": "/items"})
    assert not any("s3cret" in text for text in chain_of(refused.value))
    assert own.seen == []


def chain_of(exc: BaseException | None) -> list[str]:
    """Every message a traceback of ``exc`` could show."""
    found = []
    while exc is not None:
        found.append(str(exc))
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return found


# --- the environment does not steer calls --------------------------------------------


async def test_proxy_variables_do_not_steer_a_call(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Api() as proxy:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
            monkeypatch.setenv(name, proxy.base)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        ctx, handler = context({"url": f"http://127.0.0.1:{server.port}/items"},
                               allow="127.0.0.0/8")
        assert await handler.run(ctx) == {"items": [1, 2]}
    assert proxy.seen == [] and len(server.seen) == 1


async def test_no_cookie_is_kept_from_one_call_to_the_next(server: Server) -> None:
    with Api({"/set": (200, {"set-cookie": "tenant=a; Path=/"}, b"")}) as api:
        ctx, handler = context({"url": f"{api.base}/set"}, allow="127.0.0.0/8")
        await handler.run(ctx)
        ctx.config = HttpRequestConfig(url=f"{api.base}/items")
        await handler.run(ctx)
    assert "cookie" not in api.seen[1][1]
