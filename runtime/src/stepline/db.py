"""The database connector of the runtime: a psycopg 3 async pool, the named queries,
and the one place where driver errors become Stepline errors."""

from __future__ import annotations

import json
import re
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import cache
from importlib import resources
from typing import Any

import orjson
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb, set_json_dumps, set_json_loads
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from stepline.errors import DatabaseUnavailable

_QUERY_NAME = re.compile(r"^-- (name|fragment): (\w+)\s*$", re.MULTILINE)
_FRAGMENT_USE = re.compile(r"\{(\w+)\}")
POOL_TIMEOUT_S = 10.0
# a connection used this recently is lent without a liveness check (a round trip): if
# its backend died meanwhile, the next query fails and the delivery is answered 503
CHECK_IDLE_AFTER_S = 1.0
_last_used: weakref.WeakKeyDictionary[psycopg.AsyncConnection, float] = (
    weakref.WeakKeyDictionary())


@cache
def queries() -> dict[str, str]:
    """The named queries of ``sql/queries.sql``, by name, with every ``{fragment}`` they
    use written out."""
    text = resources.files("stepline.sql").joinpath("queries.sql").read_text()
    parts = _QUERY_NAME.split(text)[1:]
    named: dict[str, str] = {}
    fragments: dict[str, str] = {}
    for kind, name, body in zip(parts[::3], parts[1::3], parts[2::3], strict=True):
        (fragments if kind == "fragment" else named)[name] = _strip_comments(body)
    return {name: _FRAGMENT_USE.sub(lambda m: fragments[m.group(1)], body)
            for name, body in named.items()}


def _strip_comments(body: str) -> str:
    """A query without its header comment (kept in the file, for the reader)."""
    lines = body.strip().splitlines()
    while lines and lines[0].startswith("--"):
        lines.pop(0)
    return "\n".join(lines).strip()


def q(name: str) -> str:
    return queries()[name]


def jsonb(value: Any) -> Jsonb:
    return Jsonb(value)


@contextmanager
def translate_errors() -> Iterator[None]:
    """Connection-level failures are temporary for the caller: nothing was committed."""
    try:
        yield
    except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
        raise DatabaseUnavailable(f"database unavailable: {exc}") from exc


def dumps(value: Any) -> bytes:
    """JSON for PostgreSQL and for HTTP answers: orjson (several times json's speed on
    the hot path's packets), and json for what orjson refuses (an integer past 64 bits)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value).encode()


def loads(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)  # a number orjson cannot hold; anything else fails here too


async def use_fast_json(conn: psycopg.AsyncConnection) -> None:
    """The connection's JSON (jsonb parameters and results) through :func:`dumps` and
    :func:`loads` — the runtime's pools only: orjson writes a NaN as null, where the
    control plane's stdlib JSON lets PostgreSQL refuse it (a 422)."""
    set_json_dumps(dumps, conn)
    set_json_loads(loads, conn)


def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> AsyncConnectionPool:
    """A pool that is opened by the caller (``await pool.open()``) in its event loop, and
    checks a connection idle for a while before lending it, so a backend terminated
    while nobody used it is replaced instead of failing the next delivery."""
    return AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        open=False,
        timeout=POOL_TIMEOUT_S,
        kwargs={"row_factory": dict_row, "autocommit": True},
        configure=use_fast_json,
        check=check_if_idle,
    )


async def check_if_idle(conn: psycopg.AsyncConnection) -> None:
    if time.monotonic() - _last_used.get(conn, 0.0) > CHECK_IDLE_AFTER_S:
        await AsyncConnectionPool.check_connection(conn)


@asynccontextmanager
async def connection(pool: AsyncConnectionPool) -> AsyncIterator[psycopg.AsyncConnection]:
    with translate_errors():
        async with pool.connection() as conn:
            try:
                yield conn
            finally:
                _last_used[conn] = time.monotonic()


async def fetch_one(conn: psycopg.AsyncConnection, name: str, /, **params: Any) -> Any:
    """The first row of a named query as a dict (whatever the connection's row factory)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q(name), params)
        return await cur.fetchone()


async def fetch_all(conn: psycopg.AsyncConnection, name: str, /, **params: Any) -> list[Any]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q(name), params)
        return await cur.fetchall()


async def execute(conn: psycopg.AsyncConnection, name: str, /, **params: Any) -> int:
    cur = await conn.execute(q(name), params)
    return cur.rowcount
