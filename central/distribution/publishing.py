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

from central.distribution.deltas import GalleryState, build_deltas, gallery_state, manifest, newest_snapshot
from central.distribution.publisher import Publisher
from central.runtime import Runtime
from common.messages import GalleryManifest, encode
from common.topics import gallery_topic

log = logging.getLogger("central.distribution")

LOCK_CLASS = 0x66670001
"""First key of the per-gallery advisory locks (the second is hashtext(gallery id))."""
_UNPUBLISHED = "SELECT id::text FROM galleries WHERE published_version <> current_version ORDER BY id"
_ADVANCE = "UPDATE galleries SET published_version = %s WHERE id = %s"


async def lock_gallery(conn: AsyncConnection[Any], gallery_id: str) -> bool:
    """Take the gallery's distribution lock for this transaction; False when another replica holds it."""
    cur = await conn.execute("SELECT pg_try_advisory_xact_lock(%s, hashtext(%s))", (LOCK_CLASS, gallery_id))
    row = await cur.fetchone()
    return bool(row and row[0])


async def unpublished_galleries(runtime: Runtime) -> list[str]:
    async with runtime.pool.connection() as conn:
        return [row[0] for row in await (await conn.execute(_UNPUBLISHED)).fetchall()]


async def publish_gallery(runtime: Runtime, publisher: Publisher, gallery_id: str) -> int:
    """Publish up to `distribution_batch` unpublished versions of the gallery; returns how many."""
    async with runtime.pool.connection() as conn:
        if not await lock_gallery(conn, gallery_id):
            return 0
        gallery = await gallery_state(conn, gallery_id)
        if gallery is None or gallery.published_version == gallery.current_version:
            return 0
        if gallery.published_version > gallery.current_version:
            await publish_manifest(conn, publisher, gallery, gallery.current_version)
            await conn.execute(_ADVANCE, (gallery.current_version, gallery.id))
            log.warning(
                "gallery_went_back", extra={"gallery": gallery.id, "version": gallery.current_version}
            )
            return 0
        deltas = await build_deltas(
            conn,
            gallery,
            gallery.published_version,
            gallery.current_version,
            runtime.settings.distribution_batch,
        )
        topic = gallery_topic(gallery.id, "changes")
        for delta in deltas:
            await publisher.publish(topic, encode(delta), qos=1, retain=False)
        last = deltas[-1].version
        await publish_manifest(conn, publisher, gallery, last)
        await conn.execute(_ADVANCE, (last, gallery.id))
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
