"""The command outbox: `erase_person` commands queued with the erasure, and `reload_config` commands
carrying a site's crop policy queued with a retention change (central/retention/), published after.

`DistributionService.queue_erase(conn, person_id, galleries)` runs in the erasure's transaction
(central/people/service.py) and records the sites of those galleries; the distributor publishes
`Command(action="erase_person", person_id=...)` (QoS 1) to `facegate/v1/{site}/{edge}/commands` of
every edge of those sites, then deletes the row. A crash or a broker outage in between leaves the row,
so the commands go out later, perhaps twice (an edge erasing a person again changes nothing). Replicas
take rows with FOR UPDATE SKIP LOCKED, so each row is published by one replica at a time.
"""

from __future__ import annotations

import logging

from central.db.pool import AsyncPool
from central.distribution import repository as repo
from central.distribution.publisher import Publisher
from common.messages import Command, encode
from common.topics import edge_topic

log = logging.getLogger("central.distribution")

BATCH = 100


async def publish_commands(pool: AsyncPool, publisher: Publisher) -> int:
    """Publish queued commands (up to BATCH rows) and delete their rows; returns the rows done."""
    async with pool.connection() as conn:
        rows = await repo.pending_commands(conn, BATCH)
        for row_id, action, person_id, sites, crop_policy in rows:
            edges = await repo.edges_of(conn, sites)
            payload = encode(Command(action=action, person_id=person_id, crop_policy=crop_policy))
            for site, edge in edges:
                await publisher.publish(edge_topic(site, edge, "commands"), payload, qos=1, retain=False)
            await repo.command_done(conn, row_id)
            log.info("command_published", extra={"action": action, "person": person_id, "edges": len(edges)})
    return len(rows)
