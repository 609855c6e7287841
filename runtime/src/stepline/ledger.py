"""The effect ledger: a write to a customer's PostgreSQL made once per delivery, however
often the delivery's handler runs.

A handler runs again when its message comes again before the platform recorded the
outcome: a crash, a restart or a lost connection between the customer's commit and the
platform's. :class:`Ledger` runs the effect (statements on a connection of the customer's
pool) in one transaction with a row in ``stepline.effect_ledger`` keyed by the delivery's
stable key (:meth:`stepline.context.Context.effect_key`) and holding the effect's result.
A later run of the same key finds the row, skips the effect and returns the recorded
result. An effect that changed nothing (PostgreSQL gave its transaction no id: a read)
records nothing.

The table is created on first use where the user may; where it may not, a read still
runs and a write is refused, naming the statement a DBA runs. Rows older than
``STEPLINE_LEDGER_RETENTION_DAYS`` are deleted in the background, at most once an hour
per function server and database, never while a step waits. docs/architecture.md says
what this guarantees and what it does not."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from stepline.context import Context
from stepline.db import execute, fetch_one, q
from stepline.errors import PermanentError, TemporaryError

log = logging.getLogger(__name__)

TABLE = "stepline.effect_ledger"
PRUNE_EVERY_S = 3600.0
PRUNE_BATCH = 1000
PRUNE_MAX_BATCHES = 1000  # a million rows a run at most; the next run goes on
# a result larger than this (JSON text) is sent to the server only once the effect is
# known to have written: one more round trip, instead of a big read's rows sent back
INLINE_RESULT_BYTES = 64 * 1024
CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)
# the server undid the transaction and another try may pass: class 40 of SQLSTATE
RETRYABLE = (errors.SerializationFailure, errors.DeadlockDetected)
# what a user that may not keep a ledger meets: no privilege, or a read-only server
REFUSED = (errors.InsufficientPrivilege, errors.ReadOnlySqlTransaction)

Effect = Callable[[psycopg.AsyncConnection], Awaitable[Any]]


@dataclass(frozen=True)
class Done:
    result: Any
    recorded: bool = False  # this run made the effect and wrote its row
    replayed: bool = False  # an earlier run made it: ``result`` is what that one recorded


class _Missing(Exception):
    """The ledger's table does not exist (yet)."""


class _Unusable(Exception):
    """This user may not use the ledger: the message says what a DBA does about it."""


class _RecordedMeanwhile(Exception):
    """Another run of the same key committed first."""


class Ledger:
    """One per function server, as :class:`stepline.outbound.Outbound` is: runs effects
    under the ledger, and prunes the ledger of each database it wrote to now and then."""

    def __init__(self, *, prune_every_s: float = PRUNE_EVERY_S) -> None:
        self.prune_every_s = prune_every_s
        self._pruned_at: weakref.WeakKeyDictionary[AsyncConnectionPool, float] = (
            weakref.WeakKeyDictionary())
        self._pruning: set[asyncio.Task[int]] = set()

    async def run(self, ctx: Context[Any], pool: AsyncConnectionPool, effect: Effect, *,
                  part: str | None = None) -> Any:
        """``await effect(conn)`` once for this delivery (and ``part``, when one delivery
        makes several effects), in a transaction on a connection of ``pool``; its result
        (JSON: a value JSON cannot hold becomes its ``str``) as recorded. A lost
        connection is a :class:`TemporaryError`: the next attempt finds out whether the
        commit happened."""
        key = ctx.effect_key(part)
        try:
            async with pool.connection() as conn:
                done = await once(conn, key, effect)
        except (*CONNECTION_ERRORS, *RETRYABLE) as exc:
            raise TemporaryError(f"PostgreSQL {where(pool)}: {exc}") from exc
        if done.replayed:
            ctx.log(f"effect {key} was made before: its recorded result is the result")
        if done.recorded:
            self._prune_if_due(pool, days=ctx.runtime.settings.ledger_retention_days)
        return done.result

    async def pruned(self) -> None:
        """Wait for the pruning under way (a test; a server shutting down)."""
        await asyncio.gather(*self._pruning)

    def _prune_if_due(self, pool: AsyncConnectionPool, *, days: float) -> None:
        """In the background, so that no step waits for it; the first write of a server
        prunes too, as a server scaled to zero may never live an hour."""
        now = time.monotonic()
        last = self._pruned_at.get(pool)
        if not days or (last is not None and now - last < self.prune_every_s):
            return
        self._pruned_at[pool] = now
        task = asyncio.create_task(prune(pool, older_than=timedelta(days=days)))
        self._pruning.add(task)
        task.add_done_callback(self._pruning.discard)


async def once(conn: psycopg.AsyncConnection, key: str, effect: Effect) -> Done:
    """The effect under the ledger on ``conn``, which must be outside a transaction."""
    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise PermanentError("the effect ledger needs a connection outside a transaction")
    try:
        try:
            return await _attempt(conn, key, effect)
        except _Missing:
            await _create(conn)
            return await _attempt(conn, key, effect)
    except _Unusable as exc:
        return await _unledgered(conn, effect, str(exc))
    except _RecordedMeanwhile:
        return Done(await _recorded(conn, key), replayed=True)


async def _attempt(conn: psycopg.AsyncConnection, key: str, effect: Effect) -> Done:
    """Two round trips besides the effect's: BEGIN with the look-up, and the row with
    the COMMIT (psycopg's pipeline mode; the effect itself runs outside it)."""
    async with _rolled_back_on_error(conn):
        found = await _ledger(conn, _begin_and_look(conn, key))
        if found is not None:
            await conn.execute("ROLLBACK")  # nothing was done
            return Done(found["result"], replayed=True)
        result, size = await _effect(conn, effect)
        recorded = await _ledger(conn, _record_and_commit(conn, key, result, size))
    return Done(result, recorded=recorded)


@asynccontextmanager
async def _rolled_back_on_error(conn: psycopg.AsyncConnection) -> AsyncIterator[None]:
    """The ledger's transaction is begun and committed by hand, so that each can share a
    round trip: any failure rolls it back."""
    try:
        yield
    except BaseException:
        if conn.info.transaction_status in (TransactionStatus.INTRANS,
                                            TransactionStatus.INERROR):
            with suppress(psycopg.Error):
                await conn.execute("ROLLBACK")
        raise


async def _begin_and_look(conn: psycopg.AsyncConnection, key: str) -> Any:
    async with conn.pipeline():
        await conn.execute("BEGIN")
        cur = await conn.cursor(row_factory=dict_row).execute(q("ledger_lookup"), {"key": key})
    return await cur.fetchone()


async def _record_and_commit(conn: psycopg.AsyncConnection, key: str, result: Any,
                             size: int) -> bool:
    """The effect's row, if its transaction wrote anything, and the COMMIT; whether a
    row was written. A large result goes to the server only once it is known to be a
    write's: a big read's rows are not sent back just to be dropped."""
    if size > INLINE_RESULT_BYTES and not await _wrote(conn):
        await conn.execute("COMMIT")
        return False
    try:
        async with conn.pipeline():
            cur = await conn.execute(q("ledger_record"), {"key": key, "result": Jsonb(result)})
            await conn.execute("COMMIT")
    except errors.UniqueViolation as exc:
        raise _RecordedMeanwhile from exc
    return cur.rowcount == 1


async def _unledgered(conn: psycopg.AsyncConnection, effect: Effect, problem: str) -> Done:
    """Without a ledger a read still runs; a write is undone and refused."""
    async with conn.transaction():
        result, _ = await _effect(conn, effect)
        if await _wrote(conn):
            raise PermanentError(f"{problem}. Nothing was written.")
    return Done(result)


async def _effect(conn: psycopg.AsyncConnection, effect: Effect) -> tuple[Any, int]:
    """The effect's result as JSON gives it back (so a replay returns the same), and
    the size of its JSON text."""
    encoded = json.dumps(await effect(conn), default=str)
    if conn.info.transaction_status != TransactionStatus.INTRANS:
        raise PermanentError("the effect ended the ledger's transaction (COMMIT or ROLLBACK "
                             "in it): it cannot run under the ledger")
    return json.loads(encoded), len(encoded)


async def _wrote(conn: psycopg.AsyncConnection) -> bool:
    return (await fetch_one(conn, "ledger_wrote"))["wrote"]


async def _ledger(conn: psycopg.AsyncConnection, statement: Awaitable[Any]) -> Any:
    """A statement on the ledger's table, its failures named for what they mean here."""
    try:
        return await statement
    except (errors.UndefinedTable, errors.InvalidSchemaName) as exc:
        raise _Missing from exc
    except REFUSED as exc:
        raise _Unusable(may_not_use(conn, exc)) from exc


async def _create(conn: psycopg.AsyncConnection) -> None:
    try:
        async with conn.transaction():
            await execute(conn, "ledger_create")
    except REFUSED as exc:
        raise _Unusable(may_not_create(conn, exc)) from exc


async def _recorded(conn: psycopg.AsyncConnection, key: str) -> Any:
    async with conn.transaction():
        found = await fetch_one(conn, "ledger_lookup", key=key)
    if found is None:  # the other run's row was pruned in between: it is very old
        raise PermanentError(f"effect {key} was made, but its ledger row is gone")
    return found["result"]


async def prune(pool: AsyncConnectionPool, *, older_than: timedelta) -> int:
    """Delete ledger rows older than ``older_than``, a batch a transaction, and say how
    many. Housekeeping: a failure is logged, never raised."""
    pruned = 0
    try:
        for _ in range(PRUNE_MAX_BATCHES):
            async with pool.connection() as conn, conn.transaction():
                deleted = await execute(conn, "ledger_prune", older_than=older_than,
                                        batch=PRUNE_BATCH)
            pruned += deleted
            if deleted < PRUNE_BATCH:
                break
    except (psycopg.Error, PoolTimeout) as exc:
        log.warning("pruning the effect ledger of %s failed: %s", where(pool), exc)
    return pruned


def may_not_create(conn: psycopg.AsyncConnection, exc: psycopg.Error) -> str:
    user = sql.Identifier(conn.info.user).as_string(conn)
    return (f"the effect ledger's table {TABLE} does not exist in database "
            f"{conn.info.dbname!r} and user {user} may not create it "
            f"({exc.diag.message_primary}): have a DBA run `CREATE SCHEMA stepline "
            f"AUTHORIZATION {user}` there (Stepline creates the table on first use), or turn "
            f"the ledger off for this step (Database.query: config.ledger false), and its "
            f"writes are at least once")


def may_not_use(conn: psycopg.AsyncConnection, exc: psycopg.Error) -> str:
    user = sql.Identifier(conn.info.user).as_string(conn)
    return (f"user {user} may not use the effect ledger's table {TABLE} in database "
            f"{conn.info.dbname!r} ({exc.diag.message_primary}): have a DBA run `GRANT "
            f"USAGE ON SCHEMA stepline TO {user}; GRANT SELECT, INSERT, DELETE ON {TABLE} "
            f"TO {user}`, or turn the ledger off for this step (Database.query: "
            f"config.ledger false), and its writes are at least once")


def where(pool: AsyncConnectionPool) -> str:
    """host:port/dbname of a pool, never its password."""
    info = conninfo_to_dict(pool.conninfo)
    return f"{info.get('host', '')}:{info.get('port', 5432)}/{info.get('dbname', '')}"
