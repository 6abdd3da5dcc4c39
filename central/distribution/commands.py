"""The erase-command outbox: `erase_person` commands queued with the erasure, published after it.

`queue_erase(conn, person_id, galleries)` runs in the erasure's transaction (central/people/erase.py)
and records the sites of those galleries; the distributor publishes
`Command(action="erase_person", person_id=...)` (QoS 1) to `facegate/v1/{site}/{edge}/commands` of
every edge of those sites, then deletes the row. A crash or a broker outage in between leaves the row,
so the commands go out later, perhaps twice (an edge erasing a person again changes nothing). Replicas
take rows with FOR UPDATE SKIP LOCKED, so each row is published by one replica at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection

from central.distribution.publisher import Publisher
from central.runtime import Runtime
from common.messages import Command, encode
from common.topics import edge_topic

log = logging.getLogger("central.distribution")

_QUEUE = """
INSERT INTO distribution_commands (action, person_id, sites)
SELECT 'erase_person', %s, array_agg(DISTINCT site_id::text ORDER BY site_id::text)
  FROM gallery_sites WHERE gallery_id = ANY(%s)
HAVING count(*) > 0
"""
_PENDING = """
SELECT id, action, person_id::text, sites FROM distribution_commands
 ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
"""
_EDGES = "SELECT site_id::text, id::text FROM edges WHERE site_id = ANY(%s) ORDER BY site_id, id"
_DONE = "DELETE FROM distribution_commands WHERE id = %s"
BATCH = 100


async def queue_erase(conn: AsyncConnection[Any], person_id: UUID, galleries: Sequence[str]) -> None:
    """Queue erase commands for the edges of every site of `galleries`, in the caller's transaction."""
    if galleries:
        await conn.execute(_QUEUE, (person_id, list(galleries)))


async def publish_commands(runtime: Runtime, publisher: Publisher) -> int:
    """Publish queued commands (up to BATCH rows) and delete their rows; returns the rows done."""
    async with runtime.pool.connection() as conn:
        rows = await (await conn.execute(_PENDING, (BATCH,))).fetchall()
        for row_id, action, person_id, sites in rows:
            edges = await (await conn.execute(_EDGES, (sites,))).fetchall()
            payload = encode(Command(action=action, person_id=person_id))
            for site, edge in edges:
                await publisher.publish(edge_topic(site, edge, "commands"), payload, qos=1, retain=False)
            await conn.execute(_DONE, (row_id,))
            log.info("command_published", extra={"action": action, "person": person_id, "edges": len(edges)})
    return len(rows)
