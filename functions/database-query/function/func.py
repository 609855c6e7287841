"""Database.query: parameterised SQL (``:name`` parameters bound from the payload,
never formatted into the text; the SQL itself is never templated) on a stored
``postgres`` connection — behind the address guard, so a tenant's connection cannot
reach the platform's own database or any other non-public one — under the effect ledger
unless ``config.ledger`` is false, so that a write commits once however often the step
is delivered; or — with no connection, for operator accounts only — on the platform's
database inside the step transaction, so the query and the outbox commit together,
exactly once."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from stepline.sdk import (
    CATALOG,
    AddressRefused,
    Context,
    DatabaseQueryConfig,
    FunctionHost,
    Ledger,
    PermanentError,
    StoredConnection,
    TemporaryError,
    guarded_conninfo,
)

# a quoted literal or identifier, a :: cast, or a :name parameter
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|::|:([A-Za-z_][A-Za-z0-9_]*)|%")
POOL_MAX_SIZE = 5


def to_psycopg(sql: str) -> tuple[str, list[str]]:
    """``:name`` parameters as psycopg's ``%(name)s``, with the names in order."""
    names: list[str] = []

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "%":
            return "%%"
        if match.group(1):
            names.append(match.group(1))
            return f"%({match.group(1)})s"
        return token

    return _TOKENS.sub(replace, sql), names


def bind(names: list[str], payload: Any) -> dict[str, Any]:
    if names and not isinstance(payload, dict):
        raise PermanentError(
            f"the SQL has parameters ({', '.join(sorted(set(names)))}) but the payload is "
            f"{type(payload).__name__}, not an object"
        )
    missing = sorted({n for n in names if n not in payload})
    if missing:
        raise PermanentError(f"the payload has no value for parameter(s): {', '.join(missing)}")
    return {
        n: Jsonb(payload[n]) if isinstance(payload[n], dict | list) else payload[n]
        for n in set(names)
    }


def jsonable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return json.loads(json.dumps(rows, default=str))


async def execute(conn: psycopg.AsyncConnection, sql: str, params: dict[str, Any]
                  ) -> tuple[list[dict[str, Any]], int]:
    """The rows (as JSON) and the row count of one statement."""
    try:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql, params)
            rows = jsonable(await cur.fetchall()) if cur.description else []
            return rows, cur.rowcount
    except (psycopg.OperationalError, psycopg.InterfaceError):
        raise
    except psycopg.Error as exc:
        raise sql_failed(exc) from exc


def sql_failed(exc: psycopg.Error) -> PermanentError | TemporaryError:
    message = f"SQL failed: {exc.diag.message_primary or exc}"
    if exc.sqlstate and exc.sqlstate.startswith("40"):  # rolled back: a conflict, a deadlock
        return TemporaryError(message)
    if isinstance(exc, psycopg.errors.ActiveSqlTransaction):
        return PermanentError(f"{message} (the ledger runs a statement in a transaction: "
                              "config.ledger false runs it alone)")
    return PermanentError(message)


def statement(sql: str, params: dict[str, Any], *, keep_rows: bool
              ) -> Callable[[psycopg.AsyncConnection], Awaitable[dict[str, Any]]]:
    """The step's statement as the ledger's effect: its result holds only what the step
    outputs (the rows only for ``result: rows``), so a replay outputs the same and the
    ledger row stays small."""
    async def run(conn: psycopg.AsyncConnection) -> dict[str, Any]:
        rows, count = await execute(conn, sql, params)
        return {"rowcount": count, **({"rows": rows} if keep_rows else {})}
    return run


class DatabaseQuery:
    spec = CATALOG["Database.query"]

    def __init__(self) -> None:
        self._pools: dict[str, AsyncConnectionPool] = {}
        self.ledger = Ledger()

    def in_transaction(self, config: DatabaseQueryConfig) -> bool:
        """No connection: the platform's own database, in the step's transaction (the
        runtime lets only operator accounts do that)."""
        return not config.connection

    async def run(self, ctx: Context[DatabaseQueryConfig]) -> Any:
        sql, names = to_psycopg(ctx.config.sql)
        params = bind(names, ctx.payload)
        if ctx.transaction is not None:
            rows, count = await execute(ctx.transaction, sql, params)
        else:
            effect = statement(sql, params, keep_rows=ctx.config.result == "rows")
            done = await self._on_connection(ctx, effect)
            rows, count = done.get("rows", []), done["rowcount"]
        ctx.log(f"query affected {count} row(s)")
        result = ctx.config.result
        if result == "rowcount":
            return {"rowcount": count}
        if result == "payload":
            return ctx.payload
        return rows

    async def _on_connection(self, ctx: Context[DatabaseQueryConfig],
                             effect: Callable[[psycopg.AsyncConnection], Awaitable[Any]]
                             ) -> dict[str, Any]:
        name = ctx.config.connection
        pool = await self._pool(ctx, await ctx.connection(name, kind="postgres"))
        if ctx.config.ledger:
            return await self.ledger.run(ctx, pool, effect)
        try:
            async with pool.connection() as conn:
                return await effect(conn)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise TemporaryError(f"connection {name!r}: {exc}") from exc

    async def _pool(self, ctx: Context[DatabaseQueryConfig], stored: StoredConnection
                    ) -> AsyncConnectionPool:
        try:
            conninfo = await guarded_conninfo(stored.config, stored.secret,
                                              ctx.allowed_networks)
        except AddressRefused as exc:
            raise AddressRefused(f"connection {stored.name!r}: {exc}") from exc
        pool = self._pools.get(conninfo)
        if pool is None:
            pool = AsyncConnectionPool(
                conninfo,
                min_size=0,
                max_size=POOL_MAX_SIZE,
                open=False,
                kwargs={"autocommit": True},
                check=AsyncConnectionPool.check_connection,
            )
            await pool.open(wait=False)
            self._pools[conninfo] = pool
        return pool


def new() -> FunctionHost:
    return FunctionHost(DatabaseQuery())
