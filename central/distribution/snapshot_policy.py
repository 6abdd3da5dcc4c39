"""When a gallery gets a new stored snapshot, and naming it in the manifest.

A gallery whose published version P has no stored snapshot at P gets one (built and stored by the
galleries service, central/galleries/snapshots.py) when: it has no snapshot at all (new, or its
snapshots were deleted by an erasure); or P is `snapshot_every_changes` versions past the newest one;
or the newest one is older than `snapshot_every_s`; or the resync check asks for it (`force`). The
manifest of P is then published again, naming it.

Erasure safety: a snapshot built at P while an erasure commits (the erasure appends version P+1 and
deletes the gallery's stored snapshots) could hold the erased person. After storing, a short
transaction takes the gallery row FOR SHARE (so it waits for an erasure in flight to commit) and
looks for later versions that delete templates or people; if there is one, the new snapshot is
deleted again and not named (the next pass builds one after those versions). An erasure that locks
the gallery after that check deletes the new row itself, since it is committed by then.

Only the newest two stored snapshots of a gallery are kept; older rows are deleted and their objects
queued in `pending_deletions` (deleted by the cleanup sweeper, central/cleanup/).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Protocol

import anyio.to_thread
from psycopg import AsyncConnection

from central.cleanup.service import CleanupService
from central.db.pool import AsyncPool
from central.distribution import repository as repo
from central.distribution.deltas import StoredSnapshot, gallery_state, newest_snapshot
from central.distribution.publisher import Publisher
from central.distribution.publishing import publish_manifest
from central.errors import Gone, NotFound
from central.galleries.service import GalleryService
from central.storage import ObjectStore, StorageError

log = logging.getLogger("central.distribution")

KEEP = 2


class SnapshotRules(Protocol):
    """When a new snapshot is due (DistributionSettings, or CentralSettings, has them)."""

    @property
    def snapshot_every_changes(self) -> int: ...

    @property
    def snapshot_every_s(self) -> float: ...


def snapshot_due(
    settings: SnapshotRules, version: int, newest: StoredSnapshot | None, now: datetime, *, force: bool
) -> bool:
    """Whether version `version` needs a new snapshot, given the newest stored one up to it."""
    if version <= 0:
        return False
    if newest is None:
        return True
    if newest.version >= version:
        return False
    return (
        force
        or version - newest.version >= settings.snapshot_every_changes
        or (now - newest.created_at).total_seconds() >= settings.snapshot_every_s
    )


class SnapshotPolicy:
    """Keeps each gallery's published version covered by a stored snapshot (see the module doc)."""

    def __init__(  # one argument per thing the policy needs, wired by central/lifespan.py
        self,
        pool: AsyncPool,
        store: ObjectStore,
        galleries: GalleryService,
        cleanup: CleanupService,
        rules: SnapshotRules,
    ) -> None:
        self.pool = pool
        self.store = store
        self.galleries = galleries
        self.cleanup = cleanup
        self.rules = rules

    async def galleries_without_current_snapshot(self) -> list[str]:
        async with self.pool.connection() as conn:
            return await repo.galleries_without_current_snapshot(conn)

    async def maintain(self, publisher: Publisher, gallery_id: str, *, force: bool = False) -> bool:
        """Build, store and announce a snapshot of the published version when due; True when it did."""
        async with self.pool.connection() as conn:
            if not await repo.lock_gallery(conn, gallery_id):
                return False
            state = await gallery_state(conn, gallery_id)
            if state is None:
                return False
            version = state.published_version
            newest = await newest_snapshot(conn, gallery_id, version)
            if not snapshot_due(self.rules, version, newest, datetime.now(UTC), force=force):
                return False
            try:
                built = await self.galleries.store_snapshot(
                    gallery_id, state.model_id, state.current_version, version
                )
            except (Gone, NotFound) as err:  # deleted since: the next pass, past the deletion, builds one
                log.info(
                    "snapshot_deferred", extra={"gallery": gallery_id, "version": version, "why": str(err)}
                )
                return False
            if not await self._still_valid(gallery_id, version, built.info.object_key):
                return False
            await publish_manifest(conn, publisher, state, version)
            await self._prune(conn, gallery_id)
        log.info("snapshot_announced", extra={"gallery": gallery_id, "version": version})
        return True

    async def _prune(self, conn: AsyncConnection[Any], gallery_id: str) -> None:
        """Keep the newest KEEP stored snapshots (edges may still be fetching the previous one)."""
        keys = await repo.prune_snapshots(conn, gallery_id, KEEP)
        await self.cleanup.queue(conn, None, keys)  # deleted by the cleanup sweeper

    async def _still_valid(self, gallery_id: str, version: int, object_key: str) -> bool:
        """False (and the snapshot deleted) when a later committed version deletes templates or people."""
        async with self.pool.connection() as conn:
            await repo.share_lock_gallery(conn, gallery_id)
            if not await repo.deletions_after(conn, gallery_id, version):
                return True
            await repo.drop_snapshot(conn, gallery_id, version)
            await self.cleanup.queue(conn, None, [object_key])  # the cleanup sweeper retries it if this fails
        try:
            await anyio.to_thread.run_sync(self.store.delete, object_key)
        except StorageError as err:
            log.warning("snapshot_delete_queued", extra={"object_key": object_key, "error": str(err)})
        log.info("snapshot_discarded", extra={"gallery": gallery_id, "version": version})
        return False
