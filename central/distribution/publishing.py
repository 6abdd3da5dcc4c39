"""Publishing one gallery's unpublished versions, in order, from one replica at a time.

In one transaction, holding the gallery's advisory lock (`pg_try_advisory_xact_lock`: a replica that
does not get it leaves the gallery to the one that has it): read `published_version`, publish the
deltas of the next versions (QoS 1, not retained) on `facegate/v1/galleries/{g}/changes`, then the
retained manifest on `.../manifest`, then advance `published_version` and commit. A failed publish
rolls the transaction back, so those versions are published again later (edges drop a delta they
already hold); a crash anywhere does the same. The advisory lock is released with the transaction,
also when the connection dies.

A central restored from a backup can be behind what it published (`published_version` above
`current_version`): the manifest of the current version is published again, so edges go back to it.
"""

from __future__ import annotations

import logging
from typing import Any

from psycopg import AsyncConnection

from central.db.pool import AsyncPool
from central.distribution import repository as repo
from central.distribution.deltas import GalleryState, build_deltas, gallery_state, manifest, newest_snapshot
from central.distribution.publisher import Publisher
from common.messages import GalleryManifest, encode
from common.topics import gallery_topic

log = logging.getLogger("central.distribution")


async def unpublished_galleries(pool: AsyncPool) -> list[str]:
    async with pool.connection() as conn:
        return await repo.unpublished_galleries(conn)


async def publish_gallery(pool: AsyncPool, publisher: Publisher, gallery_id: str, batch: int) -> int:
    """Publish up to `batch` (FACEGATE_DISTRIBUTION_BATCH) unpublished versions of the gallery; returns
    how many."""
    async with pool.connection() as conn:
        if not await repo.lock_gallery(conn, gallery_id):
            return 0
        gallery = await gallery_state(conn, gallery_id)
        if gallery is None or gallery.published_version == gallery.current_version:
            return 0
        if gallery.published_version > gallery.current_version:
            await publish_manifest(conn, publisher, gallery, gallery.current_version)
            await repo.advance(conn, gallery.id, gallery.current_version)
            log.warning(
                "gallery_went_back", extra={"gallery": gallery.id, "version": gallery.current_version}
            )
            return 0
        deltas = await build_deltas(conn, gallery, gallery.published_version, gallery.current_version, batch)
        topic = gallery_topic(gallery.id, "changes")
        for delta in deltas:
            await publisher.publish(topic, encode(delta), qos=1, retain=False)
        last = deltas[-1].version
        await publish_manifest(conn, publisher, gallery, last)
        await repo.advance(conn, gallery.id, last)
    log.info(
        "gallery_published",
        extra={"gallery": gallery_id, "from": deltas[0].version, "to": last, "versions": len(deltas)},
    )
    return len(deltas)


async def publish_manifest(
    conn: AsyncConnection[Any], publisher: Publisher, gallery: GalleryState, version: int
) -> GalleryManifest:
    """Publish (retained) the manifest of `version`, naming the newest stored snapshot up to it."""
    message = manifest(gallery, version, await newest_snapshot(conn, gallery.id, version))
    await publisher.publish(gallery_topic(gallery.id, "manifest"), encode(message), qos=1, retain=True)
    return message
