"""The resync check: an online edge that stays behind a gallery's published version gets a command.

Edges report their gallery versions in their status and heartbeats (`edges.gallery_versions`, kept by
the ingest). An online edge is *behind* on a gallery of its site that it reports when its version v is
below the gallery's `published_version` and version v+1 was committed more than `resync_grace_s` ago
(a delta in flight, or a status not yet sent, is not a reason). For each such gallery the check makes
sure the manifest names a snapshot of the published version (built now if need be, so the edge lands
on the published version, not on an older snapshot it could not leave), then publishes
`Command(action="resync_gallery", gallery=g)` (QoS 1) to `facegate/v1/{site}/{edge}/commands`.
Rate limit: one round of commands per edge per `resync_min_interval_s` (`edge_resyncs.sent_at`).
One replica runs the check at a time (an advisory lock); the others skip it.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from central.distribution.publisher import Publisher
from central.distribution.snapshot_policy import maintain_snapshot
from central.runtime import Runtime
from common.messages import Command, encode
from common.topics import edge_topic

log = logging.getLogger("central.distribution")

RESYNC_LOCK = (0x66670002, 0)
_BEHIND = """
WITH reported AS (
    SELECT e.site_id, e.id AS edge_id, v.key AS gallery_id, (v.value #>> '{}')::numeric::integer AS version
      FROM edges e, jsonb_each(e.gallery_versions) v
     WHERE e.status = 'online' AND jsonb_typeof(v.value) = 'number'
       AND NOT EXISTS (SELECT 1 FROM edge_resyncs r
                        WHERE r.site_id = e.site_id AND r.edge_id = e.id
                          AND r.sent_at > now() - make_interval(secs => %(interval)s)))
SELECT r.site_id::text, r.edge_id::text, r.gallery_id, r.version, g.published_version
  FROM reported r
  JOIN gallery_sites gs ON gs.site_id = r.site_id AND gs.gallery_id = r.gallery_id
  JOIN galleries g ON g.id = r.gallery_id
  JOIN gallery_changes c ON c.gallery_id = g.id AND c.version = r.version + 1
 WHERE r.version >= 0 AND r.version < g.published_version
   AND c.created_at < now() - make_interval(secs => %(grace)s)
 ORDER BY 1, 2, 3
"""
_SENT = """
INSERT INTO edge_resyncs (site_id, edge_id, sent_at) VALUES (%s, %s, now())
ON CONFLICT (site_id, edge_id) DO UPDATE SET sent_at = EXCLUDED.sent_at
"""


async def check_resync(runtime: Runtime, publisher: Publisher) -> int:
    """Send resync commands to the edges that are behind; returns how many commands were sent."""
    settings = runtime.settings
    params = {"interval": settings.resync_min_interval_s, "grace": settings.resync_grace_s}
    sent = 0
    async with runtime.pool.connection() as conn:
        cur = await conn.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", RESYNC_LOCK)
        row = await cur.fetchone()
        if not (row and row[0]):
            return 0
        behind: dict[tuple[str, str], list[tuple[str, int, int]]] = defaultdict(list)
        for site, edge, gallery, version, published in await (await conn.execute(_BEHIND, params)).fetchall():
            behind[(site, edge)].append((gallery, version, published))
        for gallery in sorted({g for items in behind.values() for g, _, _ in items}):
            await maintain_snapshot(runtime, publisher, gallery, force=True)
        for (site, edge), items in behind.items():
            for gallery, version, published in items:
                command = Command(action="resync_gallery", gallery=gallery)
                await publisher.publish(edge_topic(site, edge, "commands"), encode(command), qos=1)
                log.info(
                    "resync_sent",
                    extra={
                        "site": site,
                        "edge": edge,
                        "gallery": gallery,
                        "at": version,
                        "published": published,
                    },
                )
                sent += 1
            await conn.execute(_SENT, (site, edge))
    return sent
