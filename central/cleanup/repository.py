"""The `pending_deletions` queue in PostgreSQL: objects (and folder prefixes) to delete from the store.

`queue` runs in the caller's transaction (the one that removes the rows naming the objects); the others
each run in their own short transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection

_QUEUE = """
INSERT INTO pending_deletions (object_key, is_prefix, person_id) VALUES (%s, %s, %s)
ON CONFLICT (object_key) DO NOTHING
"""
_PENDING = "SELECT object_key, is_prefix FROM pending_deletions WHERE person_id = %s ORDER BY object_key"
_DONE = "DELETE FROM pending_deletions WHERE object_key = %s"
_FAILED = "UPDATE pending_deletions SET attempts = attempts + %s, last_error = %s WHERE object_key = %s"
_STALE_PEOPLE = """
SELECT DISTINCT person_id FROM pending_deletions
 WHERE person_id IS NOT NULL AND created_at < now() - make_interval(secs => %s) LIMIT 100
"""
_STALE_ORPHANS = """
SELECT object_key, is_prefix FROM pending_deletions
 WHERE person_id IS NULL AND created_at < now() - make_interval(secs => %s) ORDER BY created_at LIMIT 100
"""


async def queue(
    conn: AsyncConnection[Any], person_id: UUID | None, keys: Iterable[str], prefixes: Iterable[str] = ()
) -> None:
    """Queue objects (and folder prefixes) for deletion, in the caller's transaction."""
    rows = [(k, False, person_id) for k in keys] + [(p, True, person_id) for p in prefixes]
    if rows:
        async with conn.cursor() as cur:
            await cur.executemany(_QUEUE, rows)


async def pending(conn: AsyncConnection[Any], person_id: UUID) -> list[tuple[str, bool]]:
    """The person's queued (key, is_prefix) pairs, by key."""
    return [(str(k), bool(p)) for k, p in await (await conn.execute(_PENDING, (person_id,))).fetchall()]


async def done(conn: AsyncConnection[Any], key: str) -> None:
    await conn.execute(_DONE, (key,))


async def failed(conn: AsyncConnection[Any], key: str, attempts: int, error: str) -> None:
    """Record `attempts` more failed tries of `key` and the last error (the row stays queued)."""
    await conn.execute(_FAILED, (attempts, error[:500], key))


async def stale_people(conn: AsyncConnection[Any], min_age_s: float) -> list[UUID]:
    """People with queued rows older than `min_age_s` (at most 100)."""
    return [row[0] for row in await (await conn.execute(_STALE_PEOPLE, (min_age_s,))).fetchall()]


async def stale_orphans(conn: AsyncConnection[Any], min_age_s: float) -> list[tuple[str, bool]]:
    """Queued (key, is_prefix) pairs of no person, older than `min_age_s`, oldest first (at most 100)."""
    rows = await (await conn.execute(_STALE_ORPHANS, (min_age_s,))).fetchall()
    return [(str(k), bool(p)) for k, p in rows]
