"""The background task that reads the fleet's state every `fleet_refresh_s` seconds (one per replica).

Each round reads every edge's row (central/monitoring/fleet.py) and pings Redis, then swaps the
snapshot the metrics collector exports. `facegate_dependency_up{dependency="database"}` is 1 when the
read succeeded within `REFRESH_TIMEOUT_S`, else 0 (the last edges read stay exported, and
`facegate_fleet_refresh_timestamp_seconds` shows how old they are).
"""

from __future__ import annotations

import asyncio
import logging
import time

import psycopg
from psycopg_pool import PoolTimeout
from redis.exceptions import RedisError

from central.monitoring.fleet import FleetSnapshot, read_edges
from central.runtime import Runtime

log = logging.getLogger("central.monitoring")

REFRESH_TIMEOUT_S = 5.0


async def refresh_forever(runtime: Runtime) -> None:
    """Refresh now, then every `runtime.settings.fleet_refresh_s` seconds until cancelled."""
    while True:
        try:
            await refresh_once(runtime)
        except Exception:  # the top of a worker loop: log, and try again next round
            log.exception("fleet_refresh_failed")
        await asyncio.sleep(runtime.settings.fleet_refresh_s)


async def refresh_once(runtime: Runtime) -> FleetSnapshot:
    """Read the fleet and the dependencies once and publish the snapshot to the collector."""
    collector = runtime.metrics.fleet
    previous = collector.snapshot
    edges, refreshed_at = previous.edges, previous.refreshed_at
    dependencies = {"database": 0}
    try:
        async with asyncio.timeout(REFRESH_TIMEOUT_S):
            async with runtime.pool.connection(timeout=REFRESH_TIMEOUT_S) as conn:
                edges = await read_edges(conn, runtime.settings.edge_offline_after_s)
        dependencies["database"] = 1
        refreshed_at = time.time()
    except (psycopg.Error, PoolTimeout, TimeoutError) as err:
        log.warning("fleet_refresh_database_down", extra={"error": str(err) or type(err).__name__})
    if runtime.redis is not None:
        dependencies["redis"] = await _redis_up(runtime)
    snapshot = FleetSnapshot(edges=edges, dependencies=dependencies, refreshed_at=refreshed_at)
    collector.update(snapshot)
    return snapshot


async def _redis_up(runtime: Runtime) -> int:
    assert runtime.redis is not None
    try:
        async with asyncio.timeout(REFRESH_TIMEOUT_S):
            await runtime.redis.ping()
    except (RedisError, OSError, TimeoutError):
        return 0
    return 1
