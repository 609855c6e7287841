"""The effect ledger on a real PostgreSQL: an effect is made once per key and a second
run returns what the first recorded; a read records nothing; a failed effect leaves
nothing; two runs at once make one effect; a user who may not keep a ledger can still
read, and a write is refused naming the DBA's statement, which then works; old rows are
pruned in the background; a lost connection is a temporary error."""

from __future__ import annotations

import asyncio
import importlib.util
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import admin
from psycopg_pool import AsyncConnectionPool

from stepline.context import Context
from stepline.definition import RetryPolicy, Step
from stepline.errors import PermanentError, TemporaryError
from stepline.ledger import INLINE_RESULT_BYTES, Ledger, prune
from stepline.packet import Packet, ProcessRef, Ref, StepRef, WorkflowRef
from stepline.settings import Settings
from stepline.step import StepRuntime

ROOT = Path(__file__).resolve().parents[1]
LEDGER_ROWS = "SELECT count(*) FROM stepline.effect_ledger"


def context(process_id: uuid.UUID | None = None, **settings: Any) -> Context[Any]:
    """A delivery's context, as the step runtime builds it; the same ``process_id``
    is another delivery of the same message."""
    packet = Packet(
        payload={}, account=Ref(id=uuid.uuid4()), job=Ref(id=uuid.uuid4()),
        workflow=WorkflowRef(id=uuid.uuid4(), version=1),
        step=StepRef(id=uuid.uuid4(), key="save"),
        process=ProcessRef(id=process_id or uuid.uuid4()),
    )
    step = Step(id=packet.step.id, workflow_id=packet.workflow.id, key="save", name=None,
                function="Database.query", config={}, next_key=None, output="single",
                retry=RetryPolicy())
    handler = database_query().DatabaseQuery()
    runtime = StepRuntime(pool=None, handler=handler, settings=Settings(**settings))
    return Context(packet=packet, step=step, config=None, runtime=runtime)


def database_query() -> Any:
    spec = importlib.util.spec_from_file_location(
        "func_database_query", ROOT / "functions" / "database-query" / "function" / "func.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def scalar(url: str, query: str) -> Any:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchone()[0]


@pytest.fixture
def customer(empty_database_url: str) -> str:
    """A customer database with a target table that has no unique key."""
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int NOT NULL, name text NOT NULL)")
    return empty_database_url


async def open_pool(url: str, max_size: int = 4) -> AsyncConnectionPool:
    pool = AsyncConnectionPool(url, min_size=0, max_size=max_size, open=False,
                               kwargs={"autocommit": True})
    await pool.open()
    return pool


@pytest.fixture
async def pool(customer: str) -> AsyncIterator[AsyncConnectionPool]:
    opened = await open_pool(customer)
    yield opened
    await opened.close()


def insert(item: int, returns: Any = None, runs: list[int] | None = None):
    async def effect(conn: psycopg.AsyncConnection) -> Any:
        if runs is not None:
            runs.append(item)
        await conn.execute("INSERT INTO items VALUES (%s, %s)", (item, f"item {item}"))
        return returns if returns is not None else {"inserted": item}
    return effect


async def test_an_effect_is_made_once_per_key_and_replays_its_result(
        pool: AsyncConnectionPool, customer: str) -> None:
    ledger, ctx, runs = Ledger(), context(), []
    first = await ledger.run(ctx, pool, insert(1, {"at": "first run"}, runs))
    again = await ledger.run(ctx, pool, insert(1, {"at": "second run"}, runs))
    assert first == again == {"at": "first run"}
    assert runs == [1], "the second run made the effect again"
    assert "was made before" in ctx.logs[-1]["message"]
    assert scalar(customer, "SELECT count(*) FROM items") == 1
    # another part of the same delivery, and another delivery, are other effects
    await ledger.run(ctx, pool, insert(2), part="2")
    await ledger.run(context(), pool, insert(3))
    assert scalar(customer, "SELECT count(*) FROM items") == 3
    assert scalar(customer, LEDGER_ROWS) == 3
    keys = scalar(customer, "SELECT array_agg(key ORDER BY key) FROM stepline.effect_ledger")
    assert ctx.idempotency_key in keys and f"{ctx.idempotency_key}:2" in keys


async def test_a_read_runs_every_time_and_records_nothing(
        pool: AsyncConnectionPool, customer: str) -> None:
    runs = []

    async def read(conn: psycopg.AsyncConnection) -> Any:
        runs.append(1)
        return (await (await conn.execute("SELECT count(*) FROM items")).fetchone())[0]

    ledger, ctx = Ledger(), context()
    assert await ledger.run(ctx, pool, read) == 0
    assert await ledger.run(ctx, pool, read) == 0
    assert len(runs) == 2
    assert scalar(customer, LEDGER_ROWS) == 0


async def test_a_failed_effect_leaves_nothing_and_runs_again(
        pool: AsyncConnectionPool, customer: str) -> None:
    async def failing(conn: psycopg.AsyncConnection) -> Any:
        await insert(1)(conn)
        raise PermanentError("the effect's own failure")

    ledger, ctx = Ledger(), context()
    with pytest.raises(PermanentError, match="own failure"):
        await ledger.run(ctx, pool, failing)
    assert scalar(customer, "SELECT count(*) FROM items") == 0
    assert await ledger.run(ctx, pool, insert(1)) == {"inserted": 1}
    assert scalar(customer, "SELECT count(*) FROM items") == 1


async def test_two_runs_at_once_make_one_effect(pool: AsyncConnectionPool, customer: str
                                                ) -> None:
    """The first run's effect is made but not committed when the second one starts, finds
    no row and commits its own; the first then meets the second's row, rolls back and
    answers with the second's result."""
    ledger, ctx = Ledger(), context()
    inserted, release = asyncio.Event(), asyncio.Event()

    async def slow(conn: psycopg.AsyncConnection) -> Any:
        await insert(1)(conn)
        inserted.set()
        await release.wait()
        return "slow run"

    first = asyncio.create_task(ledger.run(ctx, pool, slow))
    await inserted.wait()
    assert await ledger.run(ctx, pool, insert(1, "quick run")) == "quick run"
    release.set()
    assert await first == "quick run"
    assert scalar(customer, "SELECT count(*) FROM items") == 1


async def test_an_effect_that_ends_the_transaction_is_refused(pool: AsyncConnectionPool
                                                              ) -> None:
    async def committing(conn: psycopg.AsyncConnection) -> Any:
        await conn.execute("COMMIT")

    with pytest.raises(PermanentError, match="ended the ledger's transaction"):
        await Ledger().run(context(), pool, committing)


async def test_a_connection_lost_during_the_effect_is_temporary(
        pool: AsyncConnectionPool, customer: str) -> None:
    async def killed(conn: psycopg.AsyncConnection) -> Any:
        await insert(1)(conn)
        await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    ledger, ctx = Ledger(), context()
    with pytest.raises(TemporaryError, match="PostgreSQL 127.0.0.1"):
        await ledger.run(ctx, pool, killed)
    assert scalar(customer, "SELECT count(*) FROM items") == 0
    await ledger.run(ctx, pool, insert(1))
    assert scalar(customer, "SELECT count(*) FROM items") == 1


@pytest.fixture
def app_user(customer: str) -> Iterator[str]:
    """A role of this test's own that may read and write ``items`` but create nothing
    (PostgreSQL 15 grants no CREATE on a database or its public schema to others)."""
    role = f"stepline_app_{uuid.uuid4().hex[:8]}"
    admin(f"CREATE ROLE {role} LOGIN")
    with psycopg.connect(customer, autocommit=True) as conn:
        conn.execute(f"GRANT SELECT, INSERT ON items TO {role}")
    try:
        yield role
    finally:
        with psycopg.connect(customer, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS stepline CASCADE; DROP OWNED BY {role}")
        admin(f"DROP ROLE {role}")


async def test_a_user_who_may_not_create_the_ledger_reads_but_may_not_write(
        customer: str, app_user: str) -> None:
    as_user = await open_pool(psycopg.conninfo.make_conninfo(customer, user=app_user))
    try:
        ledger, ctx = Ledger(), context()

        async def read(conn: psycopg.AsyncConnection) -> Any:
            return (await (await conn.execute("SELECT count(*) FROM items")).fetchone())[0]

        assert await ledger.run(ctx, as_user, read) == 0
        with pytest.raises(PermanentError, match="Nothing was written") as refused:
            await ledger.run(ctx, as_user, insert(1))
        assert scalar(customer, "SELECT count(*) FROM items") == 0
        statement = re.search(r"`(CREATE SCHEMA [^`]*)`", str(refused.value)).group(1)
        assert statement == f'CREATE SCHEMA stepline AUTHORIZATION "{app_user}"'
        with psycopg.connect(customer, autocommit=True) as conn:  # the DBA
            conn.execute(statement)
        await ledger.run(ctx, as_user, insert(1))
        await ledger.run(ctx, as_user, insert(1))
    finally:
        await as_user.close()
    assert scalar(customer, "SELECT count(*) FROM items") == 1
    assert scalar(customer, "SELECT tableowner FROM pg_tables "
                            "WHERE tablename = 'effect_ledger'") == app_user


async def test_a_user_who_may_not_write_the_ledger_is_told_the_grant(
        pool: AsyncConnectionPool, customer: str, app_user: str) -> None:
    await Ledger().run(context(), pool, insert(0))  # the table, owned by the DBA
    with psycopg.connect(customer, autocommit=True) as conn:
        conn.execute(f"GRANT USAGE ON SCHEMA stepline TO {app_user}; "
                     f"GRANT SELECT ON stepline.effect_ledger TO {app_user}")
    as_user = await open_pool(psycopg.conninfo.make_conninfo(customer, user=app_user))
    try:
        with pytest.raises(PermanentError, match=r"GRANT SELECT, INSERT, DELETE ON "
                                                 r"stepline.effect_ledger"):
            await Ledger().run(context(), as_user, insert(1))
    finally:
        await as_user.close()
    assert scalar(customer, "SELECT count(*) FROM items") == 1


def age_rows(url: str, days: int, count: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO stepline.effect_ledger (key, result, recorded_at) "
            "SELECT %s || g, 'null', now() - make_interval(days => %s) "
            "FROM generate_series(1, %s) g", (f"old-{uuid.uuid4()}-", days, count))


async def test_old_rows_are_pruned_in_batches(pool: AsyncConnectionPool, customer: str
                                              ) -> None:
    ledger = Ledger()
    await ledger.run(context(), pool, insert(1))
    await ledger.pruned()
    age_rows(customer, 40, 2500)
    age_rows(customer, 10, 3)
    assert await prune(pool, older_than=timedelta(days=30)) == 2500
    assert scalar(customer, LEDGER_ROWS) == 1 + 3


async def test_a_server_prunes_in_the_background_at_most_once_an_interval(
        pool: AsyncConnectionPool, customer: str) -> None:
    ledger = Ledger(prune_every_s=3600)
    await ledger.run(context(), pool, insert(0))  # the table
    await ledger.pruned()
    age_rows(customer, 31, 5)
    await ledger.run(context(), pool, insert(1))
    await ledger.pruned()
    assert scalar(customer, LEDGER_ROWS) == 5 + 2, "pruned again within the interval"
    another = Ledger()  # another server: its first write prunes
    await another.run(context(), pool, insert(2))
    await another.pruned()
    assert scalar(customer, LEDGER_ROWS) == 3
    kept_forever = Ledger()
    age_rows(customer, 400, 1)
    await kept_forever.run(context(ledger_retention_days=0), pool, insert(3))
    await kept_forever.pruned()
    assert scalar(customer, LEDGER_ROWS) == 5


async def test_a_large_result_is_recorded_for_a_write_only(
        pool: AsyncConnectionPool, customer: str) -> None:
    """Past ``INLINE_RESULT_BYTES`` the ledger asks whether the effect wrote before it
    sends the result: the same outcome, one round trip more."""
    big = "x" * (INLINE_RESULT_BYTES + 1)

    async def big_read(conn: psycopg.AsyncConnection) -> Any:
        return (await (await conn.execute("SELECT repeat('x', %s)", (len(big),))).fetchone())[0]

    ledger, ctx = Ledger(), context()
    assert await ledger.run(ctx, pool, big_read) == big
    assert await ledger.run(ctx, pool, insert(1, big)) == big
    assert await ledger.run(ctx, pool, insert(1, "again")) == big
    assert scalar(customer, "SELECT count(*) FROM items") == 1
    assert scalar(customer, "SELECT length(result #>> '{}') FROM stepline.effect_ledger") == len(
        big)
