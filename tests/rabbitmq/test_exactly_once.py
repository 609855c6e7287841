"""Exactly once on the customer's side, under real faults, through RabbitMQ on one
machine: a fan-out writes each item into a customer table WITHOUT a unique key (so a
second write is a second row) while PostgreSQL restarts, RabbitMQ stops and starts, or
the function is SIGKILLed between the customer's commit and its own; and an HTTP API
counts the distinct idempotency keys against the requests it received.

The PostgreSQL and RabbitMQ that restart are the test's own (``own_servers.py``), never
the machine's shared ones. The function SIGKILLed is ``killed/``: the real function,
killed once per listed item right after its handler returned. Where the counts must be
exact whatever else was in flight when the kill came, the dispatcher delivers one
message at a time."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from conftest import migrate, unavailable

from stepline_control.onemachine.children import Child
from stepline_relay.onemachine.dispatcher import DispatchOptions
from support import (
    LocalHttp,
    Reply,
    control_plane,
    create_workflow,
    json_reply,
    postgres_connection,
)

from .broker import (
    JOB_TIMEOUT_S,
    BrokerPlatform,
    Summary,
    assert_each_item_once,
    until,
    wait_for_log,
)
from .own_servers import OwnPostgres, OwnRabbitmq, postgres_bindir, rabbitmq_server

pytestmark = pytest.mark.slow

ITEMS = 500
KILLED_FOLDER = Path(__file__).parent / "killed"
KILL_IDS = (17, 130, 190)
# patient enough for a server that restarts: retries for about a minute and a half
PATIENT = DispatchOptions(parallelism=8, prefetch=50, retries=8, backoff_delay_s=0.2)
ONE_AT_A_TIME = DispatchOptions(parallelism=1, prefetch=50, retries=8, backoff_delay_s=0.2)
# no ON CONFLICT, no unique key: whatever runs twice is two rows
INSERT = "INSERT INTO items (id, name) VALUES (:id, :name)"
SLOW_JOB_S = 4 * JOB_TIMEOUT_S
# a row whose "sent" mark a crash lost goes out again soon (the inbox makes it harmless)
LEASE = ("--lease-s", "2")


@dataclass(frozen=True)
class Endpoint:
    """A broker of the test's own, where BrokerPlatform expects a vhost."""

    url: str


def fanout(action: dict[str, Any]) -> list[dict[str, Any]]:
    """start -> split (one message per item) -> save (``action``) -> done."""
    return [
        {"key": "start", "function": "Manual", "output": "single", "next": "split"},
        {"key": "split", "function": "Transform", "config": {"expression": "items"},
         "output": "multiple", "next": "save"},
        {"key": "save", **action, "output": "single", "next": "done",
         "retry": {"attempts": 10, "backoff_s": 0.5, "max_backoff_s": 5}},
        {"key": "done", "function": "Transform", "config": {"expression": "{saved: id}"},
         "output": None, "next": None},
    ]


def save(*, ledger: bool = True) -> dict[str, Any]:
    return {"function": "Database.query",
            "config": {"connection": "crm", "sql": INSERT, "result": "payload",
                       **({} if ledger else {"ledger": False})}}


def make_items_table(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int NOT NULL, name text NOT NULL)")


async def start_job(client: httpx.AsyncClient, steps: list[dict[str, Any]], items: int,
                    customer_url: str | None = None) -> str:
    if customer_url:
        response = await client.post("/v1/connections", json=postgres_connection(customer_url))
        assert response.status_code == 201, response.text
    workflow = await create_workflow(client, steps, name="exactly once")
    payload = {"items": [{"id": i, "name": f"item {i}"} for i in range(items)]}
    started = await client.post(f"/v1/workflows/{workflow['id']}/jobs", json={"payload": payload})
    assert started.status_code == 201, started.text
    return started.json()["id"]


def start(platform: BrokerPlatform, options: DispatchOptions) -> None:
    for name in ("Transform", "Database.query"):
        if name not in platform.functions:
            platform.add_function(name)
    platform.start_functions()
    wait_for_log(platform.start_relay(*LEASE), "topology declared", timeout_s=60)
    platform.start_dispatcher(options)


def value(platform: BrokerPlatform, sql: str, *params: Any) -> Any:
    """A value from the platform database, or None while it cannot be reached."""
    try:
        return platform.value(sql, *params)
    except psycopg.OperationalError:
        return None


def saved(platform: BrokerPlatform) -> int:
    return value(platform, "SELECT count(*) FROM processes WHERE step_key = 'save' "
                           "AND status = 'succeeded'") or 0


async def job_end(platform: BrokerPlatform, job_id: str, revive: Child | None = None) -> int:
    """Wait for the job's end, restarting ``revive`` each time it died; how often it did."""
    deaths = 0

    def ended() -> bool:
        nonlocal deaths
        if revive is not None and revive.process.poll() is not None:
            deaths += 1
            revive.start().wait_ready()
        platform.check_running()
        return value(platform, "SELECT status FROM jobs WHERE id = %s", job_id) not in (
            None, "running")
    await until(ended, f"the end of job {job_id}", SLOW_JOB_S, interval_s=0.1)
    await until(lambda: value(platform, "SELECT count(*) FROM outbox WHERE status = 'pending'")
                == 0, "every outbox row sent", interval_s=0.1)
    return deaths


def ledger_rows(customer_url: str) -> int:
    with psycopg.connect(customer_url) as conn:
        return conn.execute("SELECT count(*) FROM stepline.effect_ledger").fetchone()[0]


def replays(database_url: str, job_id: str) -> int:
    """Deliveries that found their effect in the ledger (the runtime logs each)."""
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT count(*) FROM processes, jsonb_array_elements(logs) line "
            "WHERE job_id = %s AND line->>'message' LIKE %s",
            (job_id, "%was made before%")).fetchone()[0]


def report(what: str, summary: Summary, **figures: Any) -> None:
    extra = ", ".join(f"{k} {v}" for k, v in figures.items())
    print(f"\n{what}: job {summary.job_status}, {summary.rows} rows "
          f"({summary.rows - summary.distinct_rows} duplicates), {extra}")


# --- (a) the PostgreSQL server restarted mid-run ------------------------------------


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    bindir = postgres_bindir()
    if bindir is None:
        unavailable("PostgreSQL's initdb (Debian's postgresql package)")
    server = OwnPostgres(bindir)
    try:
        yield server.init().start()
    finally:
        server.destroy()


async def test_postgresql_restarted_twice_mid_run_each_item_written_once(
        own_postgres: OwnPostgres, vhost: Any, tmp_path: Path) -> None:
    """The platform's database and the customer's on one server, as in the issue: a
    restart ends both transactions of a step at once, and one may have committed."""
    platform_url = own_postgres.create_database("platform")
    migrate(platform_url)
    customer_url = own_postgres.create_database("customer")
    make_items_table(customer_url)
    platform = BrokerPlatform(database_url=platform_url, vhost=vhost, log_dir=tmp_path)
    try:
        start(platform, PATIENT)
        async with control_plane(platform_url) as client:
            job_id = await start_job(client, fanout(save()), ITEMS, customer_url)
            for done, mode in ((150, "fast"), (350, "immediate")):
                await until(lambda d=done: saved(platform) >= d, f"{done} items saved")
                own_postgres.restart(mode)
            await job_end(platform, job_id)
    finally:
        platform.stop()
    summary = Summary.of(platform_url, customer_url, job_id)
    report("PostgreSQL restarted twice", summary, restarts=2,
           replays=replays(platform_url, job_id))
    assert_each_item_once(summary, ITEMS)
    assert ledger_rows(customer_url) == ITEMS


# --- (b) RabbitMQ stopped and started mid-run ---------------------------------------


@pytest.fixture
def own_rabbitmq() -> Iterator[OwnRabbitmq]:
    server = rabbitmq_server()
    if server is None:
        unavailable("rabbitmq-server")
    node = OwnRabbitmq(server)
    try:
        yield node.start()
    finally:
        node.destroy()


async def test_rabbitmq_stopped_and_started_twice_mid_run_each_item_written_once(
        own_rabbitmq: OwnRabbitmq, database_url: str, empty_database_url: str,
        tmp_path: Path) -> None:
    make_items_table(empty_database_url)
    platform = BrokerPlatform(database_url=database_url, vhost=Endpoint(own_rabbitmq.url),
                              log_dir=tmp_path)
    try:
        start(platform, PATIENT)
        async with control_plane(database_url) as client:
            job_id = await start_job(client, fanout(save()), ITEMS, empty_database_url)
            for done in (150, 350):
                await until(lambda d=done: saved(platform) >= d, f"{done} items saved")
                own_rabbitmq.stop()
                own_rabbitmq.start()
            await job_end(platform, job_id)
        dispatch_log = platform.dispatchers[0].log_path.read_text()
    finally:
        platform.stop()
    summary = Summary.of(database_url, empty_database_url, job_id)
    report("RabbitMQ stopped and started twice", summary, restarts=2,
           replays=replays(database_url, job_id))
    assert_each_item_once(summary, ITEMS)
    assert ledger_rows(empty_database_url) == ITEMS
    # the dispatcher had to come back after each stop
    assert dispatch_log.count("dispatching Database.query") >= 3, dispatch_log[-2000:]


# --- (c) the function SIGKILLed between the customer's commit and its own ------------


def killed_function(platform: BrokerPlatform, real: str, slug: str, marks: Path) -> Child:
    marks.mkdir()
    child = platform.add_function(real, KILLED_FOLDER, STEPLINE_TEST_REAL_FOLDER=slug,
                                  STEPLINE_TEST_KILL_IDS=",".join(map(str, KILL_IDS)),
                                  STEPLINE_TEST_KILL_MARKS=str(marks))
    platform._killed.add(id(child))  # its deaths are the test's, counted by job_end
    return child


@pytest.mark.parametrize(("ledger", "rows"), [(True, ITEMS), (False, ITEMS + len(KILL_IDS))],
                         ids=["ledger", "no-ledger"])
async def test_a_function_killed_between_the_customers_commit_and_its_own(
        broker_platform: BrokerPlatform, database_url: str, empty_database_url: str,
        tmp_path: Path, ledger: bool, rows: int) -> None:
    """With the ledger each killed item's redelivery finds its row: 500 rows. Without it,
    the same kills write each of those items twice: the hole the ledger closes."""
    make_items_table(empty_database_url)
    marks = tmp_path / "marks"
    function = killed_function(broker_platform, "Database.query", "database-query", marks)
    start(broker_platform, ONE_AT_A_TIME)
    async with control_plane(database_url) as client:
        job_id = await start_job(client, fanout(save(ledger=ledger)), ITEMS,
                                 empty_database_url)
        deaths = await job_end(broker_platform, job_id, revive=function)
    summary = Summary.of(database_url, empty_database_url, job_id)
    report(f"SIGKILL after the customer's commit, ledger {ledger}", summary, kills=deaths,
           replays=replays(database_url, job_id))
    assert deaths == len(KILL_IDS)
    assert sorted(int(mark.name) for mark in marks.iterdir()) == sorted(KILL_IDS)
    assert (summary.rows, summary.distinct_rows) == (rows, ITEMS)
    if ledger:
        assert_each_item_once(summary, ITEMS)
        assert replays(database_url, job_id) == len(KILL_IDS)
    else:
        assert summary.job_status == "succeeded"


# --- (d) an HTTP API that counts idempotency keys -------------------------------------

ORDERS = 200
LOST_IDS = (5, 99, 150)  # the API makes the order, then its answer is lost (a 503)


class Orders(LocalHttp):
    """An order API that honours ``Idempotency-Key``: a key it has seen gets the first
    answer again, no new order. For the items of ``LOST_IDS`` the first request makes
    its order and answers 503, as a reply lost on its way back."""

    def __init__(self) -> None:
        self.requests: list[tuple[str | None, int]] = []  # (key, item id)
        self.orders: dict[str, dict[str, Any]] = {}
        super().__init__(self._respond)

    def _respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        item = int(re.search(rb'"id":\s*(\d+)', body).group(1))
        key = headers.get("idempotency-key")
        self.requests.append((key, item))
        first = key not in self.orders
        if first:
            self.orders[key] = {"id": item, "order": len(self.orders) + 1}
        if first and item in LOST_IDS:
            return json_reply(503, {"error": "the answer was lost"})
        return json_reply(201, self.orders[key])


def order(url: str) -> dict[str, Any]:
    return {"function": "Http.request",
            "config": {"method": "POST", "url": url, "body": "{{ payload }}"}}


async def test_an_api_counts_one_key_per_item_however_often_it_was_called(
        broker_platform: BrokerPlatform, database_url: str, tmp_path: Path) -> None:
    """Each item's POST reaches the API once more for a lost answer (the step's retry)
    and once more for a SIGKILL after the call (the redelivery): always with the same
    key, so the API makes one order per item."""
    killed_function(broker_platform, "Http.request", "http-request", tmp_path / "marks")
    function = broker_platform.functions["Http.request"]
    with Orders() as api:
        start(broker_platform, ONE_AT_A_TIME)
        async with control_plane(database_url) as client:
            job_id = await start_job(client, fanout(order(f"{api.base}/orders")), ORDERS)
            deaths = await job_end(broker_platform, job_id, revive=function)
        with psycopg.connect(database_url) as conn:
            processes = {str(p) for (p,) in conn.execute(
                "SELECT id FROM processes WHERE job_id = %s AND step_key = 'save'", (job_id,))}
            status = conn.execute("SELECT status FROM jobs WHERE id = %s",
                                  (job_id,)).fetchone()[0]
    keys = {key for key, _ in api.requests}
    print(f"\nHTTP API: {len(api.requests)} requests, {len(keys)} distinct keys, "
          f"{len(api.orders)} orders, kills {deaths}, lost answers {len(LOST_IDS)}")
    assert status == "succeeded" and deaths == len(KILL_IDS)
    assert len(api.requests) == ORDERS + len(KILL_IDS) + len(LOST_IDS)
    assert keys == processes and len(api.orders) == ORDERS
    repeated = {item for key, item in api.requests
                if sum(1 for k, _ in api.requests if k == key) > 1}
    assert repeated == {*KILL_IDS, *LOST_IDS}
