"""Dead letters kept in bounds: per edge at most `max_per_edge` rows and `max_bytes_per_edge` payload
bytes (the oldest deleted first), and none older than `retention_s`. Every replica that runs ingest
sweeps once a minute (started by central/lifespan.py with ingest); the deletes are idempotent, so
replicas sweeping at once only repeat each other. Between sweeps an edge can add at most a minute of
dead letters beyond its cap.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import psycopg
from psycopg_pool import PoolTimeout

from central.db.pool import AsyncPool
from central.metrics import Metrics
from central.settings import CentralSettings

log = logging.getLogger("central.ingest")
SWEEP_S = 60.0

_EXPIRED = "DELETE FROM dead_letters WHERE received_at < now() - make_interval(secs => %s)"
_OVER_COUNT = """
DELETE FROM dead_letters d USING (
    SELECT id, row_number() OVER (PARTITION BY site_id, edge_id ORDER BY id DESC) AS n FROM dead_letters
) r
 WHERE d.id = r.id AND r.n > %s
"""
_OVER_BYTES = """
DELETE FROM dead_letters d USING (
    SELECT id, sum(octet_length(payload)) OVER (PARTITION BY site_id, edge_id ORDER BY id DESC) AS kept
      FROM dead_letters
) r
 WHERE d.id = r.id AND r.kept > %s
"""


@dataclass(frozen=True, slots=True)
class DeadLetterRules:
    max_per_edge: int = 1000
    max_bytes_per_edge: int = 16 * 1024 * 1024
    retention_s: float = 7 * 86400.0


class DeadLetterSweeper:
    def __init__(self, pool: AsyncPool, metrics: Metrics, rules: DeadLetterRules) -> None:
        self.pool, self.metrics, self.rules = pool, metrics, rules

    async def sweep(self) -> dict[str, int]:
        """Delete what is expired or beyond the caps; returns the rows deleted per cause."""
        rules = self.rules
        deleted: dict[str, int] = {}
        async with self.pool.connection() as conn:
            for cause, sql, limit in (
                ("retention", _EXPIRED, rules.retention_s),
                ("count", _OVER_COUNT, rules.max_per_edge),
                ("bytes", _OVER_BYTES, rules.max_bytes_per_edge),
            ):
                deleted[cause] = (await conn.execute(sql, (limit,))).rowcount
        for cause, count in deleted.items():
            if count:
                self.metrics.dead_letters_dropped.labels(cause=cause).inc(count)
                log.info("dead_letters_dropped", extra={"cause": cause, "rows": count})
        return deleted

    async def sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except (psycopg.Error, PoolTimeout, OSError) as err:  # PostgreSQL away: the next sweep
                log.warning("dead_letters_sweep_failed", extra={"error": str(err)[:300]})
            await asyncio.sleep(SWEEP_S)


def dead_letter_rules(settings: CentralSettings) -> DeadLetterRules:
    return DeadLetterRules(
        max_per_edge=settings.dead_letter_max_per_edge,
        max_bytes_per_edge=settings.dead_letter_max_bytes_per_edge,
        retention_s=settings.dead_letter_retention_s,
    )
