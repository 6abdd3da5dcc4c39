"""The background task that reads the fleet's state every `every_s` seconds (one per replica).

Each round reads every edge's row (central/monitoring/repository.py) and pings Redis, then swaps the
snapshot the metrics collector exports. `facegate_dependency_up{dependency="database"}` is 1 when the
read succeeded within `REFRESH_TIMEOUT_S`, else 0 (the last edges read stay exported, and
`facegate_fleet_refresh_timestamp_seconds` shows how old they are). central/lifespan.py starts it.
"""

from __future__ import annotations

import asyncio
import logging
import time

import psycopg
import redis.asyncio as aioredis
from psycopg_pool import PoolTimeout
from redis.exceptions import RedisError

from central.db.pool import AsyncPool
from central.monitoring import repository as repo
from central.monitoring.collector import FleetCollector
from central.monitoring.fleet import FleetSnapshot, edge_gauges

log = logging.getLogger("central.monitoring")

REFRESH_TIMEOUT_S = 5.0


class FleetRefresher:
    """Keeps `collector` current: `every_s` is FACEGATE_FLEET_REFRESH_S, `offline_after_s` the staleness
    window of FACEGATE_EDGE_OFFLINE_AFTER_S."""

    def __init__(
        self,
        pool: AsyncPool,
        redis: aioredis.Redis | None,
        collector: FleetCollector,
        *,
        every_s: float,
        offline_after_s: float,
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.collector = collector
        self.every_s = every_s
        self.offline_after_s = offline_after_s

    async def refresh_forever(self) -> None:
        """Refresh now, then every `every_s` seconds until cancelled."""
        while True:
            try:
                await self.refresh_once()
            except Exception:  # the top of a worker loop: log, and try again next round
                log.exception("fleet_refresh_failed")
            await asyncio.sleep(self.every_s)

    async def refresh_once(self) -> FleetSnapshot:
        """Read the fleet and the dependencies once and publish the snapshot to the collector."""
        previous = self.collector.snapshot
        edges, refreshed_at = previous.edges, previous.refreshed_at
        dependencies = {"database": 0}
        try:
            async with asyncio.timeout(REFRESH_TIMEOUT_S):
                async with self.pool.connection(timeout=REFRESH_TIMEOUT_S) as conn:
                    rows = await repo.fleet_rows(conn, self.offline_after_s)
            edges = tuple(edge_gauges(row) for row in rows)
            dependencies["database"] = 1
            refreshed_at = time.time()
        except (psycopg.Error, PoolTimeout, TimeoutError) as err:
            log.warning("fleet_refresh_database_down", extra={"error": str(err) or type(err).__name__})
        if self.redis is not None:
            dependencies["redis"] = await _redis_up(self.redis)
        snapshot = FleetSnapshot(edges=edges, dependencies=dependencies, refreshed_at=refreshed_at)
        self.collector.update(snapshot)
        return snapshot


async def _redis_up(redis: aioredis.Redis) -> int:
    try:
        async with asyncio.timeout(REFRESH_TIMEOUT_S):
            await redis.ping()
    except (RedisError, OSError, TimeoutError):
        return 0
    return 1
