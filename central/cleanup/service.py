"""Deleting face-data objects whose rows are gone, through the `pending_deletions` queue.

The transaction that removes rows (erase, template deletion, snapshot pruning) queues their objects in
the same commit (`queue`); `purge` then deletes a person's objects from the store and drops each queue
row once its object is gone. A failed delete stays queued (attempts and last error recorded): a repeated
DELETE of the person or template retries it, and every replica's sweeper (`sweep_forever`, each minute,
started by central/lifespan.py) retries rows older than 30 s, so a crash or a store outage after the
commit never leaves face data behind.
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

from central.cleanup import repository as repo
from central.db.pool import AsyncPool
from central.metrics import Metrics
from central.storage import ObjectStore, StorageError

log = logging.getLogger("central.people")  # the logger these events have always had

ATTEMPTS = 3
"""Tries per object within one request before it is reported as remaining."""
SWEEP_EVERY_S = 60.0
SWEEP_MIN_AGE_S = 30.0
"""Queue rows younger than this are left to the request that queued them (it purges right after)."""


class CleanupService:
    """The deletion queue of one app: queue in a caller's transaction, purge now, sweep in the background."""

    def __init__(self, pool: AsyncPool, store: ObjectStore, metrics: Metrics) -> None:
        self.pool = pool
        self.store = store
        self.metrics = metrics

    async def queue(
        self,
        conn: AsyncConnection[Any],
        person_id: UUID | None,
        keys: Iterable[str],
        prefixes: Iterable[str] = (),
    ) -> None:
        """Queue objects (and folder prefixes) for deletion, in the caller's transaction."""
        await repo.queue(conn, person_id, keys, prefixes)

    async def purge(self, person_id: UUID) -> tuple[int, list[str]]:
        """Delete the person's queued objects; returns (objects deleted, keys still remaining)."""
        async with self.pool.connection() as conn:
            pending = await repo.pending(conn, person_id)
        deleted, remaining = 0, []
        for key, is_prefix in pending:
            count, error = await self._delete_with_retries(key, is_prefix)
            await self._settle(key, error)
            deleted += count
            if error is not None:
                remaining.append(key)
                self.metrics.object_delete_failures.inc()
        return deleted, remaining

    async def sweep_once(self, min_age_s: float = SWEEP_MIN_AGE_S) -> int:
        """Retry every queued deletion older than `min_age_s`; returns how many objects are still queued."""
        async with self.pool.connection() as conn:
            people = await repo.stale_people(conn, min_age_s)
            orphans = await repo.stale_orphans(conn, min_age_s)
        remaining = 0
        for person_id in people:
            remaining += len((await self.purge(person_id))[1])
        for key, is_prefix in orphans:
            _, error = await self._delete_with_retries(key, is_prefix)
            await self._settle(key, error)
            if error is not None:
                remaining += 1
        return remaining

    async def sweep_forever(self) -> None:
        """Background task of every replica: queued deletions are retried even if nobody asks again."""
        while True:
            await anyio.sleep(SWEEP_EVERY_S)
            try:
                remaining = await self.sweep_once()
            except psycopg.Error as err:  # the next period retries; the queue rows stay
                log.warning("pending_deletions_sweep_failed", extra={"error": str(err)})
                continue
            if remaining:
                log.warning("pending_deletions_remaining", extra={"objects": remaining})

    async def _settle(self, key: str, error: str | None) -> None:
        async with self.pool.connection() as conn:
            if error is None:
                await repo.done(conn, key)
            else:
                await repo.failed(conn, key, ATTEMPTS, error)

    def _delete(self, key: str, is_prefix: bool) -> int:
        if is_prefix:
            return self.store.delete_prefix(key)
        self.store.delete(key)
        return 1

    async def _delete_with_retries(self, key: str, is_prefix: bool) -> tuple[int, str | None]:
        error = None
        for attempt in range(ATTEMPTS):
            try:
                return await anyio.to_thread.run_sync(self._delete, key, is_prefix), None
            except StorageError as err:
                error = str(err)
                log.warning(
                    "object_delete_failed", extra={"key": key, "attempt": attempt + 1, "error": error}
                )
                await anyio.sleep(0.2 * (attempt + 1))
        return 0, error
