"""Database.query under the effect ledger, its handler run as the step runtime runs it
(a real platform database holding the stored connection, a real customer database): a
write delivered twice writes once and outputs the same; ``config.ledger: false`` writes
twice and keeps no ledger; a read records nothing; a statement that cannot run in a
transaction says how to run it."""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from stepline.context import Context
from stepline.db import create_pool
from stepline.definition import RetryPolicy, Step
from stepline.errors import PermanentError
from stepline.packet import Packet, ProcessRef, Ref, StepRef, WorkflowRef
from stepline.step import StepRuntime
from support import control_plane, postgres_connection, settings_for

ROOT = Path(__file__).resolve().parents[1]
ITEMS = "SELECT count(*) FROM items"


def database_query() -> Any:
    spec = importlib.util.spec_from_file_location(
        "func_database_query", ROOT / "functions" / "database-query" / "function" / "func.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.DatabaseQuery()


class Deliveries:
    """Builds the context of a delivery of a ``Database.query`` step, as StepRuntime
    does, on the platform database that holds the account's ``crm`` connection."""

    def __init__(self, pool: AsyncConnectionPool, database_url: str, account_id: uuid.UUID
                 ) -> None:
        self.handler = database_query()
        self.runtime = StepRuntime(pool=pool, handler=self.handler,
                                   settings=settings_for(database_url,
                                                         http_allow_cidrs="127.0.0.0/8"))
        self.account_id = account_id

    def of(self, config: dict[str, Any], payload: Any, process_id: uuid.UUID | None = None
           ) -> Context[Any]:
        packet = Packet(
            payload=payload, account=Ref(id=self.account_id), job=Ref(id=uuid.uuid4()),
            workflow=WorkflowRef(id=uuid.uuid4(), version=1),
            step=StepRef(id=uuid.uuid4(), key="save"),
            process=ProcessRef(id=process_id or uuid.uuid4()))
        step = Step(id=packet.step.id, workflow_id=packet.workflow.id, key="save", name=None,
                    function="Database.query", config={"connection": "crm", **config},
                    next_key=None, output="single", retry=RetryPolicy())
        typed = self.runtime.handler.spec.config.model_validate(step.config)
        return Context(packet=packet, step=step, config=typed, runtime=self.runtime)

    async def twice(self, config: dict[str, Any], payload: Any) -> tuple[Any, Any]:
        """The step's output on its delivery and on a redelivery of the same message."""
        process_id = uuid.uuid4()
        first = await self.handler.run(self.of(config, payload, process_id))
        return first, await self.handler.run(self.of(config, payload, process_id))


@pytest.fixture
def customer(empty_database_url: str) -> str:
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int NOT NULL, name text NOT NULL)")
    return empty_database_url


@pytest.fixture
async def deliveries(database_url: str, customer: str) -> AsyncIterator[Deliveries]:
    async with control_plane(database_url) as client:
        response = await client.post("/v1/connections", json=postgres_connection(customer))
        assert response.status_code == 201, response.text
    with psycopg.connect(database_url) as conn:
        account_id = conn.execute("SELECT account_id FROM connections WHERE name = 'crm'"
                                  ).fetchone()[0]
    pool = create_pool(database_url, max_size=2)
    await pool.open()
    deliveries = Deliveries(pool, database_url, account_id)
    yield deliveries
    await deliveries.handler.ledger.pruned()
    for customer_pool in deliveries.handler._pools.values():  # as the server's exit would
        await customer_pool.close()
    await pool.close()


def scalar(url: str, query: str) -> Any:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchone()[0]


INSERT = "INSERT INTO items (id, name) VALUES (:id, :name) RETURNING id, name"


@pytest.mark.parametrize(("result", "output"), [
    ("rows", [{"id": 1, "name": "one"}]),
    ("rowcount", {"rowcount": 1}),
    ("payload", {"id": 1, "name": "one"}),
])
async def test_a_write_delivered_twice_writes_once_and_outputs_the_same(
        deliveries: Deliveries, customer: str, result: str, output: Any) -> None:
    first, again = await deliveries.twice({"sql": INSERT, "result": result},
                                          {"id": 1, "name": "one"})
    assert first == again == output
    assert scalar(customer, ITEMS) == 1
    recorded = scalar(customer, "SELECT result FROM stepline.effect_ledger")
    assert recorded == {"rowcount": 1, **({"rows": output} if result == "rows" else {})}


async def test_without_the_ledger_a_redelivered_write_writes_again(
        deliveries: Deliveries, customer: str) -> None:
    await deliveries.twice({"sql": INSERT, "ledger": False}, {"id": 1, "name": "one"})
    assert scalar(customer, ITEMS) == 2
    assert scalar(customer, "SELECT to_regnamespace('stepline')") is None


async def test_a_read_records_nothing(deliveries: Deliveries, customer: str) -> None:
    with psycopg.connect(customer, autocommit=True) as conn:
        conn.execute("INSERT INTO items VALUES (7, 'seven')")
    first, again = await deliveries.twice({"sql": "SELECT id, name FROM items WHERE id = :id"},
                                          {"id": 7})
    assert first == again == [{"id": 7, "name": "seven"}]
    assert scalar(customer, "SELECT count(*) FROM stepline.effect_ledger") == 0


async def test_a_statement_that_cannot_run_in_a_transaction_names_the_way_out(
        deliveries: Deliveries, customer: str) -> None:
    sql = "CREATE INDEX CONCURRENTLY items_id ON items (id)"
    with pytest.raises(PermanentError, match="config.ledger false runs it alone"):
        await deliveries.handler.run(deliveries.of({"sql": sql}, {}))
    await deliveries.handler.run(deliveries.of({"sql": sql, "ledger": False}, {}))
    assert scalar(customer, "SELECT count(*) FROM pg_indexes WHERE indexname = 'items_id'") == 1
