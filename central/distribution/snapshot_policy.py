"""When a gallery gets a new stored snapshot, and naming it in the manifest.

A gallery whose published version P has no stored snapshot at P gets one (built by
central.galleries.snapshots, stored in object storage) when: it has no snapshot at all (new, or its
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
queued in `pending_deletions` (deleted by the cleanup sweeper of central/people/cleanup.py).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
from psycopg import AsyncConnection

from central.distribution.deltas import StoredSnapshot, gallery_state, newest_snapshot
from central.distribution.publisher import Publisher
from central.distribution.publishing import lock_gallery, publish_manifest
from central.errors import Gone, NotFound
from central.galleries.repository import Gallery
from central.galleries.snapshots import build_and_store
from central.people.cleanup import queue_deletions
from central.runtime import Runtime
from central.settings import CentralSettings
from central.storage import StorageError

log = logging.getLogger("central.distribution")

_STALE = """
SELECT g.id::text FROM galleries g
 WHERE g.published_version > 0
   AND NOT EXISTS (SELECT 1 FROM snapshots s WHERE s.gallery_id = g.id AND s.version = g.published_version)
 ORDER BY g.id
"""
KEEP = 2
_PRUNE = """
DELETE FROM snapshots WHERE gallery_id = %(g)s AND version < (
    SELECT min(version) FROM (SELECT version FROM snapshots WHERE gallery_id = %(g)s
                               ORDER BY version DESC LIMIT %(keep)s) newest)
RETURNING object_key
"""
_DROP = "DELETE FROM snapshots WHERE gallery_id = %s AND version = %s"
_DELETIONS_AFTER = """
SELECT EXISTS (
    SELECT 1 FROM gallery_changes WHERE gallery_id = %s AND version > %s
       AND (jsonb_array_length(COALESCE(change->'deleted_people', '[]')) > 0
            OR jsonb_array_length(COALESCE(change->'deleted_templates', '[]')) > 0))
"""


def snapshot_due(
    settings: CentralSettings, version: int, newest: StoredSnapshot | None, now: datetime, *, force: bool
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


async def galleries_without_current_snapshot(runtime: Runtime) -> list[str]:
    async with runtime.pool.connection() as conn:
        return [row[0] for row in await (await conn.execute(_STALE)).fetchall()]


async def maintain_snapshot(
    runtime: Runtime, publisher: Publisher, gallery_id: str, *, force: bool = False
) -> bool:
    """Build, store and announce a snapshot of the published version when due; True when it did."""
    async with runtime.pool.connection() as conn:
        if not await lock_gallery(conn, gallery_id):
            return False
        state = await gallery_state(conn, gallery_id)
        if state is None:
            return False
        version = state.published_version
        newest = await newest_snapshot(conn, gallery_id, version)
        if not snapshot_due(runtime.settings, version, newest, datetime.now(UTC), force=force):
            return False
        gallery = Gallery(gallery_id, "", state.model_id, state.current_version, datetime.now(UTC), ())
        try:
            built = await build_and_store(runtime, gallery, version)
        except (Gone, NotFound) as err:  # deleted since: the next pass, past the deletion, builds one
            log.info("snapshot_deferred", extra={"gallery": gallery_id, "version": version, "why": str(err)})
            return False
        if not await _still_valid(runtime, gallery_id, version, built.info.object_key):
            return False
        await publish_manifest(conn, publisher, state, version)
        await _prune(conn, gallery_id)
    log.info("snapshot_announced", extra={"gallery": gallery_id, "version": version})
    return True


async def _prune(conn: AsyncConnection[Any], gallery_id: str) -> None:
    """Keep the newest KEEP stored snapshots (edges may still be fetching the previous one)."""
    rows = await (await conn.execute(_PRUNE, {"g": gallery_id, "keep": KEEP})).fetchall()
    await queue_deletions(conn, None, [row[0] for row in rows])  # deleted by the cleanup sweeper


async def _still_valid(runtime: Runtime, gallery_id: str, version: int, object_key: str) -> bool:
    """False (and the snapshot deleted) when a later committed version deletes templates or people."""
    async with runtime.pool.connection() as conn:
        await conn.execute("SELECT 1 FROM galleries WHERE id = %s FOR SHARE", (gallery_id,))
        row = await (await conn.execute(_DELETIONS_AFTER, (gallery_id, version))).fetchone()
        if not (row and row[0]):
            return True
        await conn.execute(_DROP, (gallery_id, version))
        await queue_deletions(conn, None, [object_key])  # the cleanup sweeper retries it if this fails
    try:
        await anyio.to_thread.run_sync(runtime.store.delete, object_key)
    except StorageError as err:
        log.warning("snapshot_delete_queued", extra={"object_key": object_key, "error": str(err)})
    log.info("snapshot_discarded", extra={"gallery": gallery_id, "version": version})
    return False
