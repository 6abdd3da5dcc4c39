"""The SQL of the database layer itself: migration bookkeeping, event partitions, start-up and readiness
checks. The migration runner and partition upkeep (synchronous psycopg) and the pools call these."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

Connection = psycopg.Connection[tuple[object, ...]]

_CREATE_MIGRATIONS = b"""
CREATE TABLE IF NOT EXISTS schema_migrations (
    name        text PRIMARY KEY,
    sha256      text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""
SCHEMA_PRESENT = "SELECT to_regclass('schema_migrations') IS NOT NULL"
"""Whether the database was migrated (the pools' start-up check)."""
_PARTITIONS = (
    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
    " WHERE i.inhparent = 'events'::regclass"
)


# --- migrations --------------------------------------------------------------------------------------


def lock_session(conn: Connection, key: int, timeout_s: float) -> None:
    """Take the session-level advisory lock `key`, waiting at most `timeout_s` (LockNotAvailable)."""
    conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{int(timeout_s * 1000)}ms",))
    try:
        conn.execute("SELECT pg_advisory_lock(%s)", (key,))
    finally:
        conn.execute("RESET lock_timeout")


def unlock_session(conn: Connection, key: int) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


def create_migrations_table(conn: Connection) -> None:
    conn.execute(_CREATE_MIGRATIONS)


def applied_migrations(conn: Connection) -> dict[str, str]:
    """{name: sha256} of every recorded migration."""
    rows = conn.execute("SELECT name, sha256 FROM schema_migrations").fetchall()
    return {str(name): str(digest) for name, digest in rows}


def apply_migration(conn: Connection, name: str, script: bytes, sha256: str) -> None:
    """Run `script` and record it, in one transaction (psycopg.Error when it fails: rolled back)."""
    with conn.transaction():
        conn.execute(script)  # no parameters: simple protocol, several statements allowed
        conn.execute("INSERT INTO schema_migrations (name, sha256) VALUES (%s, %s)", (name, sha256))


def has_events_table(conn: Connection) -> bool:
    row = conn.execute("SELECT to_regclass('events') IS NOT NULL").fetchone()
    return bool(row and row[0])


def schema_present_sync(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(SCHEMA_PRESENT).fetchone()
    return bool(row and row[0])


async def schema_present(conn: psycopg.AsyncConnection[Any]) -> bool:
    row = await (await conn.execute(SCHEMA_PRESENT)).fetchone()
    return bool(row and row[0])


async def ping(conn: psycopg.AsyncConnection[Any]) -> None:
    """One round trip (the readiness probe)."""
    await conn.execute("SELECT 1")


# --- event partitions --------------------------------------------------------------------------------


def lock_transaction(conn: Connection, key: int) -> None:
    """Take the transaction-level advisory lock `key` (released at commit)."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))


def event_partitions(conn: Connection) -> set[str]:
    """The names of the partitions of `events`."""
    return {str(row[0]) for row in conn.execute(_PARTITIONS).fetchall()}


def create_default_partition(conn: Connection, name: str) -> None:
    conn.execute(sql.SQL("CREATE TABLE {} PARTITION OF events DEFAULT").format(sql.Identifier(name)))


def create_month_partition(conn: Connection, default: str, name: str, start: datetime, end: datetime) -> bool:
    """Create partition `name` for start <= ts < end, first moving that range's rows out of the default
    partition `default` (and back in afterwards); whether any rows were moved."""
    bounds = (start, end)
    table = sql.Identifier(default)
    row = conn.execute(
        sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE ts >= %s AND ts < %s)").format(table), bounds
    ).fetchone()
    stranded = bool(row and row[0])
    if stranded:
        conn.execute("CREATE TEMP TABLE facegate_moving_events (LIKE events)")
        conn.execute(
            sql.SQL(
                "WITH moved AS (DELETE FROM {} WHERE ts >= %s AND ts < %s RETURNING *)"
                " INSERT INTO facegate_moving_events SELECT * FROM moved"
            ).format(table),
            bounds,
        )
    conn.execute(
        sql.SQL("CREATE TABLE {} PARTITION OF events FOR VALUES FROM ({}) TO ({})").format(
            sql.Identifier(name), sql.Literal(start.isoformat()), sql.Literal(end.isoformat())
        )
    )
    if stranded:
        # The ids are already in event_ids: tell the events_claim_id trigger to let these rows pass.
        conn.execute("SELECT set_config('facegate.moving_events', 'on', true)")
        conn.execute("INSERT INTO events SELECT * FROM facegate_moving_events")
        conn.execute("SELECT set_config('facegate.moving_events', 'off', true)")
        conn.execute("DROP TABLE facegate_moving_events")
    return stranded
