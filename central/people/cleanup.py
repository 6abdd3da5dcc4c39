"""Deleting face-data objects whose rows are gone, through the `pending_deletions` queue.

The transaction that removes rows (erase, template deletion) queues their objects in the same
commit; `purge_pending` then deletes them from the store and drops each queue row once its object
is gone. A failed delete stays queued (attempts and last error recorded): a repeated DELETE of the
person or template retries it, and every replica's sweeper (`sweep_forever`, each minute) retries
rows older than 30 s, so a crash or a store outage after the commit never leaves face data behind.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any
from uuid import UUID

import anyio
import anyio.to_thread
import psycopg
from psycopg import AsyncConnection

from central.runtime import Runtime
from central.storage import StorageError

log = logging.getLogger("central.people")

ATTEMPTS = 3
"""Tries per object within one request before it is reported as remaining."""

_QUEUE = """
INSERT INTO pending_deletions (object_key, is_prefix, person_id) VALUES (%s, %s, %s)
ON CONFLICT (object_key) DO NOTHING
"""
_PENDING = "SELECT object_key, is_prefix FROM pending_deletions WHERE person_id = %s ORDER BY object_key"
_DONE = "DELETE FROM pending_deletions WHERE object_key = %s"
_FAILED = "UPDATE pending_deletions SET attempts = attempts + %s, last_error = %s WHERE object_key = %s"


async def queue_deletions(
    conn: AsyncConnection[Any], person_id: UUID | None, keys: Iterable[str], prefixes: Iterable[str] = ()
) -> None:
    """Queue objects (and folder prefixes) for deletion, in the caller's transaction."""
    rows = [(k, False, person_id) for k in keys] + [(p, True, person_id) for p in prefixes]
    if rows:
        async with conn.cursor() as cur:
            await cur.executemany(_QUEUE, rows)


def _delete(runtime: Runtime, key: str, is_prefix: bool) -> int:
    if is_prefix:
        return runtime.store.delete_prefix(key)
    runtime.store.delete(key)
    return 1


async def _delete_with_retries(runtime: Runtime, key: str, is_prefix: bool) -> tuple[int, str | None]:
    error = None
    for attempt in range(ATTEMPTS):
        try:
            return await anyio.to_thread.run_sync(_delete, runtime, key, is_prefix), None
        except StorageError as err:
            error = str(err)
            log.warning("object_delete_failed", extra={"key": key, "attempt": attempt + 1, "error": error})
            await anyio.sleep(0.2 * (attempt + 1))
    return 0, error


async def purge_pending(runtime: Runtime, person_id: UUID) -> tuple[int, list[str]]:
    """Delete the person's queued objects; returns (objects deleted, keys still remaining)."""
    async with runtime.pool.connection() as conn:
        pending = await (await conn.execute(_PENDING, (person_id,))).fetchall()
    deleted, remaining = 0, []
    for key, is_prefix in pending:
        count, error = await _delete_with_retries(runtime, key, is_prefix)
        async with runtime.pool.connection() as conn:
            if error is None:
                await conn.execute(_DONE, (key,))
            else:
                await conn.execute(_FAILED, (ATTEMPTS, error[:500], key))
        deleted += count
        if error is not None:
            remaining.append(key)
            runtime.metrics.object_delete_failures.inc()
    return deleted, remaining


SWEEP_EVERY_S = 60.0
SWEEP_MIN_AGE_S = 30.0
"""Queue rows younger than this are left to the request that queued them (it purges right after)."""
_STALE_PEOPLE = """
SELECT DISTINCT person_id FROM pending_deletions
 WHERE person_id IS NOT NULL AND created_at < now() - make_interval(secs => %s) LIMIT 100
"""
_STALE_ORPHANS = """
SELECT object_key, is_prefix FROM pending_deletions
 WHERE person_id IS NULL AND created_at < now() - make_interval(secs => %s) ORDER BY created_at LIMIT 100
"""


async def sweep_once(runtime: Runtime, min_age_s: float = SWEEP_MIN_AGE_S) -> int:
    """Retry every queued deletion older than `min_age_s`; returns how many objects are still queued."""
    async with runtime.pool.connection() as conn:
        people = [row[0] for row in await (await conn.execute(_STALE_PEOPLE, (min_age_s,))).fetchall()]
        orphans = await (await conn.execute(_STALE_ORPHANS, (min_age_s,))).fetchall()
    remaining = 0
    for person_id in people:
        remaining += len((await purge_pending(runtime, person_id))[1])
    for key, is_prefix in orphans:
        _, error = await _delete_with_retries(runtime, key, is_prefix)
        async with runtime.pool.connection() as conn:
            if error is None:
                await conn.execute(_DONE, (key,))
            else:
                await conn.execute(_FAILED, (ATTEMPTS, error[:500], key))
                remaining += 1
    return remaining


async def sweep_forever(runtime: Runtime) -> None:
    """Background task of every replica: queued deletions are retried even if nobody asks again."""
    while True:
        await anyio.sleep(SWEEP_EVERY_S)
        try:
            remaining = await sweep_once(runtime)
        except psycopg.Error as err:  # the next period retries; the queue rows stay
            log.warning("pending_deletions_sweep_failed", extra={"error": str(err)})
            continue
        if remaining:
            log.warning("pending_deletions_remaining", extra={"objects": remaining})
