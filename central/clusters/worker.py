"""The clustering worker: unknown events' embeddings, as they are ingested, into clusters.

Every `interval_s` (and at once again while a batch was full) one replica (a transaction-level
advisory lock) takes the oldest unclustered unknown embeddings, asks pgvector for the nearest open
clusters' centroids of the same model, and applies the rule of central/clusters/assign.py: join the
best one when its similarity reaches the threshold (its centroid, sites, first and last seen and best
crop updated) or start a new cluster. A batch commits as one transaction. Without pgvector the worker
does nothing (clusters answer 503); an event corrected to a person, or matched by the edge, is never
clustered.
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import psycopg

from central.clusters import repository as repo
from central.clusters.assign import CANDIDATES, choose
from central.db.pool import AsyncPool
from central.db.vectors import vector_search_on

log = logging.getLogger("central.clusters")


class ClusterWorker:
    def __init__(
        self, pool: AsyncPool, threshold: float, *, interval_s: float = 1.0, batch: int = 200
    ) -> None:
        self.pool, self.threshold, self.interval_s, self.batch = pool, threshold, interval_s, batch

    async def run(self) -> None:
        """Until cancelled; an error of one pass is logged and the next pass retries."""
        while True:
            try:
                done = await self.step()
            except (psycopg.Error, OSError) as err:
                log.warning("clustering_failed", extra={"error": str(err)[:300]})
                done = 0
            if done < self.batch:
                await asyncio.sleep(self.interval_s)

    async def step(self) -> int:
        """One batch: how many events were placed (0 when pgvector is off or another replica clusters)."""
        async with self.pool.connection() as conn:
            if not await vector_search_on(conn) or not await repo.try_lock(conn):
                return 0
            items = await repo.queue(conn, self.batch)
            for item in items:
                unit = item.embedding / max(float(np.linalg.norm(item.embedding)), 1e-12)
                ids, centroids = await repo.nearest(conn, item.model_id, unit.tolist(), CANDIDATES)
                found = choose(unit.astype(np.float32), centroids, self.threshold)
                await repo.place(conn, item, None if found is None else ids[found])
        if items:
            log.info("clustered", extra={"events": len(items)})
        return len(items)
