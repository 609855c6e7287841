"""A 500-item fan-out runs through RabbitMQ while something breaks, and ends as if nothing
had: the job succeeded, every item saved once, no process left pending, no outbox row
unsent, no message acted on twice. The processes are the real ones: func-python function
servers, ``stepline-relay`` in RabbitMQ mode, ``stepline-dispatch``."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import psycopg
import pytest

from stepline.db import create_pool
from stepline_relay.amqp import Broker
from stepline_relay.onemachine.dispatcher import Dispatcher, http_session
from stepline_relay.rabbitmq import RabbitmqTransport
from stepline_relay.relay import Relay, RelayOptions
from stepline_relay.topology import platform_functions
from stepline_relay.transport import Result, Row, Sent
from support import control_plane

from .broker import (
    FAULTY_FOLDER,
    RELAY_APP,
    TEST_DISPATCH,
    BrokerPlatform,
    Summary,
    Vhost,
    assert_each_item_once,
    function_app,
    make_items_table,
    processes_done,
    start_fanout_job,
    until,
    wait_for_job_end,
    wait_for_log,
)

pytestmark = pytest.mark.slow

ITEMS = 500
FUNCTIONS = ["Transform", "Database.query"]
LEASE = ("--lease-s", "2")
SLOW_PUBLISHING = ("--batch-size", "5", "--pumps", "1")


def start(platform: BrokerPlatform, *relay_args: str, relays: int = 1) -> None:
    for name in FUNCTIONS:
        if name not in platform.functions:
            platform.add_function(name)
    platform.start_functions()
    for _ in range(relays):
        wait_for_log(platform.start_relay(*LEASE, *relay_args), "topology declared")
    platform.start_dispatcher()


def sent_saves(platform: BrokerPlatform) -> int:
    return platform.value("SELECT count(*) FROM outbox WHERE destination = 'Database.query' "
                          "AND status = 'sent'")


def relays_that_sent(platform: BrokerPlatform) -> int:
    return platform.value("SELECT count(DISTINCT claimed_by) FROM outbox WHERE status = 'sent'")


async def test_the_relay_killed_while_publishing_then_restarted(
    broker_platform: BrokerPlatform, database_url: str, empty_database_url: str
) -> None:
    make_items_table(empty_database_url)
    start(broker_platform, *SLOW_PUBLISHING)
    async with control_plane(database_url) as client:
        job_id = await start_fanout_job(client, empty_database_url, ITEMS)
        await until(lambda: sent_saves(broker_platform) >= 50, "50 items published")
        broker_platform.kill(broker_platform.relays[0])
        sent_at_kill = sent_saves(broker_platform)
        broker_platform.start_relay(*LEASE, *SLOW_PUBLISHING)
        await wait_for_job_end(broker_platform, job_id)
    assert sent_at_kill < ITEMS, "the relay was killed after it had published the fan-out"
    assert relays_that_sent(broker_platform) == 2
    assert_each_item_once(Summary.of(database_url, empty_database_url, job_id), ITEMS)


async def test_two_relays_at_once(
    broker_platform: BrokerPlatform, database_url: str, empty_database_url: str
) -> None:
    make_items_table(empty_database_url)
    start(broker_platform, "--batch-size", "20", relays=2)
    async with control_plane(database_url) as client:
        job_id = await start_fanout_job(client, empty_database_url, ITEMS)
        await wait_for_job_end(broker_platform, job_id)
    assert relays_that_sent(broker_platform) == 2
    assert_each_item_once(Summary.of(database_url, empty_database_url, job_id), ITEMS)


async def test_rabbitmq_closes_every_connection_mid_run(
    broker_platform: BrokerPlatform, vhost: Vhost, database_url: str, empty_database_url: str
) -> None:
    make_items_table(empty_database_url)
    start(broker_platform)
    async with control_plane(database_url) as client:
        job_id = await start_fanout_job(client, empty_database_url, ITEMS)
        for done in (100, 300):
            await until(lambda d=done: processes_done(broker_platform, "save") >= d,
                        f"{done} items saved")
            vhost.close_connections()
        await wait_for_job_end(broker_platform, job_id)
    assert_each_item_once(Summary.of(database_url, empty_database_url, job_id), ITEMS)
    # both had to come back: the relay to publish the later "done" messages, the
    # dispatcher to deliver them
    relay_log = broker_platform.relays[0].log_path.read_text()
    dispatch_log = broker_platform.dispatchers[0].log_path.read_text()
    assert relay_log.count("topology declared") >= 2, relay_log[-2000:]
    assert dispatch_log.count("dispatching Database.query") >= 2, dispatch_log[-2000:]


async def test_a_function_killed_mid_step_then_restarted(
    broker_platform: BrokerPlatform, database_url: str, empty_database_url: str
) -> None:
    make_items_table(empty_database_url)
    start(broker_platform)
    async with control_plane(database_url) as client:
        job_id = await start_fanout_job(client, empty_database_url, ITEMS)
        await until(lambda: processes_done(broker_platform, "save") >= 100, "100 items saved")
        broker_platform.restart_function("Database.query")
        await wait_for_job_end(broker_platform, job_id)
    assert_each_item_once(Summary.of(database_url, empty_database_url, job_id), ITEMS)


def terminate_backends(database_url: str, *applications: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = ANY(%s)",
            (list(applications),)).fetchone()[0]


async def test_database_backends_of_the_relay_and_a_function_terminated_mid_run(
    broker_platform: BrokerPlatform, database_url: str, empty_database_url: str
) -> None:
    make_items_table(empty_database_url)
    start(broker_platform)
    terminated = []
    async with control_plane(database_url) as client:
        job_id = await start_fanout_job(client, empty_database_url, ITEMS)
        for done in (100, 250, 400):
            await until(lambda d=done: processes_done(broker_platform, "save") >= d,
                        f"{done} items saved")
            terminated.append(terminate_backends(database_url, RELAY_APP,
                                                 function_app("Database.query")))
        await wait_for_job_end(broker_platform, job_id)
    assert all(n >= 2 for n in terminated), terminated  # the relay's listener at least, and more
    assert_each_item_once(Summary.of(database_url, empty_database_url, job_id), ITEMS)


FAIL_ID = 123


async def test_a_function_answering_500_for_one_message(
    broker_platform: BrokerPlatform, vhost: Vhost, database_url: str, empty_database_url: str
) -> None:
    make_items_table(empty_database_url)
    broker_platform.add_function("Database.query", FAULTY_FOLDER,
                                 STEPLINE_TEST_FAIL_ID=str(FAIL_ID))
    start(broker_platform)
    async with control_plane(database_url) as client:
        job_id = await start_fanout_job(client, empty_database_url, ITEMS)
        status = await wait_for_job_end(broker_platform, job_id)
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert status == "failed"
    assert job["counts"]["failed"] == 1 and job["counts"]["succeeded"] == 2 * ITEMS
    summary = Summary.of(database_url, empty_database_url, job_id)
    assert summary.processes == {
        ("start", "succeeded"): 1, ("split", "succeeded"): 1, ("save", "succeeded"): ITEMS - 1,
        ("save", "failed"): 1, ("done", "succeeded"): ITEMS - 1}
    assert (summary.rows, summary.distinct_rows) == (ITEMS - 1, ITEMS - 1)
    assert set(summary.outbox) == {"sent"}
    with psycopg.connect(database_url) as conn:
        process_id, error = conn.execute(
            "SELECT id, error FROM processes WHERE job_id = %s AND status = 'failed'",
            (job_id,)).fetchone()
        event_id = conn.execute("SELECT event_id::text FROM outbox WHERE process_id = %s",
                                (process_id,)).fetchone()[0]
        letter = conn.execute(
            "SELECT consumer, event_id, origin, reason, headers, body FROM dead_letters "
            "WHERE job_id = %s", (job_id,)).fetchall()
    assert len(letter) == 1
    consumer, letter_event, origin, reason, headers, body = letter[0]
    assert (consumer, letter_event, origin) == ("Database.query", event_id, "dead-letter-queue")
    assert "rejected" in reason and "'Database.query'" in reason
    assert error == {"type": "transport", "message": reason}
    assert headers["id"] == event_id and headers["processid"] == str(process_id)
    assert f'"id": {FAIL_ID}' in body  # the message itself is kept, to be retried
    assert vhost.queue_depths()["stepline.dead-letters"] == 0
    log = broker_platform.dispatchers[0].log_path.read_text()
    assert "answered 500" in log and "the test's one failure" in log


class Doubling(RabbitmqTransport):
    """Publishes every row twice: each AMQP message reaches the queue two times."""

    published = 0

    async def deliver(self, rows: list[Row]) -> list[Result]:
        results = await super().deliver(rows + rows)
        self.published += sum(isinstance(r, Sent) for r in results)
        return results[: len(rows)]


async def test_the_same_message_delivered_twice_has_one_effect(
    vhost: Vhost, database_url: str, empty_database_url: str, tmp_path: Path
) -> None:
    """The relay and the dispatchers run in this process, so their counts can be read:
    every message is published twice, and both copies are delivered and acked."""
    make_items_table(empty_database_url)
    async with contextlib.AsyncExitStack() as stack:
        platform = BrokerPlatform(database_url=database_url, vhost=vhost, log_dir=tmp_path)
        stack.callback(platform.stop)
        for name in FUNCTIONS:
            platform.add_function(name)
        platform.start_functions()
        pool = create_pool(database_url, max_size=4)
        await pool.open()
        stack.push_async_callback(pool.close)
        transport = Doubling(broker=Broker(vhost.url, name="doubling relay"),
                             functions=platform_functions(), queue_type="classic")
        stack.push_async_callback(transport.close)
        await transport.ready()
        relay = Relay(database_url=database_url, pool=pool, transport=transport,
                      options=RelayOptions(lease_s=30))
        dispatchers = []
        for name, url in platform.function_urls().items():
            broker = Broker(vhost.url, name=f"dispatch {name}")
            session = http_session(TEST_DISPATCH)
            stack.push_async_callback(broker.close)
            stack.push_async_callback(session.close)
            dispatchers.append(Dispatcher(broker=broker, queue=name, url=url, session=session,
                                          options=TEST_DISPATCH))
        stop = asyncio.Event()
        runs = [asyncio.create_task(r.run(stop)) for r in (relay, *dispatchers)]

        async def halt() -> None:
            stop.set()
            await asyncio.gather(*runs)
        stack.push_async_callback(halt)

        async with control_plane(database_url) as client:
            job_id = await start_fanout_job(client, empty_database_url, ITEMS)
            await wait_for_job_end(platform, job_id)
        # the second copies may still be on their way: wait until every one was acked
        # every message went out twice (more, if a lease ran out on a slow machine); a
        # batch is counted once RabbitMQ confirmed it, which can come after its messages
        # were consumed and the job ended
        await until(lambda: transport.published >= 2 * (1 + 2 * ITEMS),
                    "every copy confirmed", timeout_s=30)
        assert transport.published >= 2 * (1 + 2 * ITEMS)
        await until(lambda: sum(d.acked for d in dispatchers) == transport.published,
                    "every copy acknowledged", timeout_s=30)
    assert sum(d.rejected for d in dispatchers) == 0
    assert_each_item_once(Summary.of(database_url, empty_database_url, job_id), ITEMS)
