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

from central.db.pool import AsyncPool
from central.distribution import repository as repo
from central.distribution.publisher import Publisher
from central.distribution.snapshot_policy import SnapshotPolicy
from common.messages import Command, encode
from common.topics import edge_topic

log = logging.getLogger("central.distribution")


async def check_resync(  # what the check needs, passed by the distributor
    pool: AsyncPool, publisher: Publisher, policy: SnapshotPolicy, interval_s: float, grace_s: float
) -> int:
    """Send resync commands to the edges that are behind (`resync_grace_s`, at most one round per edge
    per `resync_min_interval_s`); returns how many commands were sent."""
    sent = 0
    async with pool.connection() as conn:
        if not await repo.lock_resync(conn):
            return 0
        behind: dict[tuple[str, str], list[tuple[str, int, int]]] = defaultdict(list)
        for site, edge, gallery, version, published in await repo.edges_behind(conn, interval_s, grace_s):
            behind[(site, edge)].append((gallery, version, published))
        for gallery in sorted({g for items in behind.values() for g, _, _ in items}):
            await policy.maintain(publisher, gallery, force=True)
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
            await repo.resync_sent(conn, site, edge)
    return sent
