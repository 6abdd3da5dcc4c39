"""Connection pools over psycopg_pool: opened, filled and checked on request, never at import time.

Both openers wait until `min_size` connections are up, then run a start-up check: the server
answers and the database has been migrated (`facegate central migrate`). Connections are checked
again when taken from the pool (a server restart costs a reconnect, not an error).
"""

from __future__ import annotations

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from central.db import repository as repo
from common.errors import FacegateError

APPLICATION_NAME = "facegate-central"

SyncPool = ConnectionPool[psycopg.Connection[TupleRow]]
AsyncPool = AsyncConnectionPool[psycopg.AsyncConnection[TupleRow]]


class DatabaseUnavailableError(FacegateError):
    """PostgreSQL cannot be reached, or its database was never migrated."""


def open_pool(dsn: str, min_size: int = 1, max_size: int = 10, *, timeout_s: float = 10.0) -> SyncPool:
    """A started, checked synchronous pool; close it with `pool.close()` (or use it as a context)."""
    pool: SyncPool = ConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        open=False,
        timeout=timeout_s,
        name="facegate",
        check=ConnectionPool.check_connection,
        kwargs={"application_name": APPLICATION_NAME},
    )
    try:
        pool.open(wait=True, timeout=timeout_s)
        with pool.connection() as conn:
            migrated = repo.schema_present_sync(conn)
    except (PoolTimeout, psycopg.Error) as err:
        pool.close()
        raise _unreachable(dsn, timeout_s, err) from err
    if not migrated:
        pool.close()
        raise _unmigrated()
    return pool


async def open_async_pool(
    dsn: str, min_size: int = 1, max_size: int = 10, *, timeout_s: float = 10.0
) -> AsyncPool:
    """A started, checked asyncio pool for the Litestar app; close it with `await pool.close()`."""
    pool: AsyncPool = AsyncConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        open=False,
        timeout=timeout_s,
        name="facegate-async",
        check=AsyncConnectionPool.check_connection,
        kwargs={"application_name": APPLICATION_NAME},
    )
    try:
        await pool.open(wait=True, timeout=timeout_s)
        async with pool.connection() as conn:
            migrated = await repo.schema_present(conn)
    except (PoolTimeout, psycopg.Error) as err:
        await pool.close()
        raise _unreachable(dsn, timeout_s, err) from err
    if not migrated:
        await pool.close()
        raise _unmigrated()
    return pool


def _unreachable(dsn: str, timeout_s: float, err: Exception) -> DatabaseUnavailableError:
    where = psycopg.conninfo.conninfo_to_dict(dsn)
    return DatabaseUnavailableError(
        f"PostgreSQL at {where.get('host', 'localhost')}:{where.get('port', 5432)} "
        f"database {where.get('dbname', '?')} did not answer within {timeout_s:g} s ({err}); "
        "check FACEGATE_DATABASE_URL and that the server is up"
    )


def _unmigrated() -> DatabaseUnavailableError:
    return DatabaseUnavailableError("the database has no schema yet: run `facegate central migrate` first")
