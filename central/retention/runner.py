"""Applying the retention policies: a worker on every replica; one run at a time across replicas.

A run takes a session-level PostgreSQL advisory lock with `pg_try_advisory_lock` on a connection of its
own; a replica that does not get it skips the run (another is doing it), so two replicas never remove
the same rows, and a replica that dies mid-run releases the lock with its session. Then, in order:

1. monthly partitions of `events` whose whole month is past **every** site's policy (and the defaults')
   are dropped whole: their crop keys are queued in `pending_deletions`, their ids leave the `event_ids`
   ledger, the partition is detached and dropped, in one transaction;
2. elsewhere (younger partitions, `events_default`), each site's events past its policy are deleted in
   transactions of at most `batch` rows, their crops queued and their ids forgotten in the same one;
3. crops past a site's crop policy (shorter than its event policy) are cleared and queued, in batches;
4. the audit log (global policy), dead letters and the delivery log (per site) in batches;
5. the queued objects are deleted from the store (central/cleanup/), and the gauges of the oldest row
   kept are set.

Each step commits batch by batch, so a run stopped half-way leaves consistent rows behind and the next
run carries on. Erase stays immediate (it never waits for this).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from central.cleanup.service import CleanupService
from central.db.pool import AsyncPool
from central.metrics import RetentionMetrics
from central.retention import repository as repo
from central.retention.policy import Policies

log = logging.getLogger("central.retention")
RETENTION_LOCK_KEY = 0x66672D7265746E31  # "fg-retn1"
FIRST_RUN_AFTER_S = 300.0
"""A replica that just started waits this long before its first run (start-up stays light)."""


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    every_s: float = 3600.0
    batch: int = 5000


@dataclass(slots=True)
class Removed:
    """What one run removed."""

    partitions: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    objects: int = 0

    def add(self, table: str, count: int) -> None:
        self.rows[table] = self.rows.get(table, 0) + count


class RetentionRunner:
    def __init__(
        self,
        pool: AsyncPool,
        cleanup: CleanupService,
        metrics: RetentionMetrics,
        settings: RetentionSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.pool, self.cleanup, self.metrics, self.settings, self.clock = (
            pool,
            cleanup,
            metrics,
            settings,
            clock,
        )

    async def run_forever(self) -> None:
        """The first run FIRST_RUN_AFTER_S after start-up (or `every_s`, if shorter), then every
        `every_s`, on every replica (the lock lets one run at a time)."""
        await asyncio.sleep(min(FIRST_RUN_AFTER_S, self.settings.every_s))
        while True:
            try:
                await self.run_once()
            except Exception:  # the top of a worker loop: log and try again next period
                log.exception("retention_run_failed")
            await asyncio.sleep(self.settings.every_s)

    async def run_once(self) -> Removed | None:
        """One run, or None when another replica holds the lock."""
        async with self.pool.connection() as lock_conn:
            await lock_conn.set_autocommit(True)
            cur = await lock_conn.execute("SELECT pg_try_advisory_lock(%s)", (RETENTION_LOCK_KEY,))
            row = await cur.fetchone()
            if not row or not row[0]:
                return None
            try:
                return await self._run()
            finally:
                await lock_conn.execute("SELECT pg_advisory_unlock(%s)", (RETENTION_LOCK_KEY,))
                await lock_conn.set_autocommit(False)

    async def _run(self) -> Removed:
        now = datetime.fromtimestamp(self.clock(), UTC)
        removed = Removed()
        async with self.pool.connection() as conn:
            policies = await repo.policies(conn)
        await self._partitions(policies, now, removed)
        await self._events(policies, now, removed)
        await self._crops(policies, now, removed)
        await self._logs(policies, now, removed)
        await self._finish(removed)
        log.info(
            "retention_run",
            extra={"partitions": removed.partitions, "rows": removed.rows, "objects": removed.objects},
        )
        return removed

    async def _partitions(self, policies: Policies, now: datetime, removed: Removed) -> None:
        line = policies.droppable_before(now)
        async with self.pool.connection() as conn:
            months = await repo.month_partitions(conn)
        for name, start, end in months:
            if end > line:
                break
            try:
                async with self.pool.connection() as conn:
                    rows, queued = await repo.drop_partition(conn, name, start, end)
            except psycopg.errors.LockNotAvailable:  # busy: the rows go in batches below, or next run
                log.warning("retention_partition_busy", extra={"partition": name})
                break
            removed.partitions.append(name)
            removed.add("events", rows)
            removed.objects += queued
            self.metrics.partitions_dropped.inc()
            self.metrics.rows.labels("events").inc(rows)
            self.metrics.objects.inc(queued)
            log.info("retention_partition_dropped", extra={"partition": name, "rows": rows, "crops": queued})

    async def _events(self, policies: Policies, now: datetime, removed: Removed) -> None:
        sites = list(policies.sites)
        targets: list[tuple[str | None, datetime]] = [(s, policies.event_cutoff(s, now)) for s in sites]
        targets.append((None, now - timedelta(days=policies.default.events_days)))
        for site, before in targets:
            while True:
                async with self.pool.connection() as conn:
                    rows, queued = await repo.delete_events(conn, site, sites, before, self.settings.batch)
                removed.add("events", rows)
                removed.objects += queued
                self.metrics.rows.labels("events").inc(rows)
                self.metrics.objects.inc(queued)
                if rows < self.settings.batch:
                    break
        async with self.pool.connection() as conn:
            pruned = await repo.prune_clusters(conn)
        if pruned:
            removed.add("unknown_clusters", pruned)
            self.metrics.rows.labels("unknown_clusters").inc(pruned)

    async def _crops(self, policies: Policies, now: datetime, removed: Removed) -> None:
        sites = list(policies.sites)
        targets: list[tuple[str | None, int]] = [(s, policies.sites[s].crops_days) for s in sites]
        targets.append((None, policies.default.crops_days))
        for site, days in targets:
            before = now - timedelta(days=days)
            while True:
                async with self.pool.connection() as conn:
                    cleared = await repo.drop_crops(conn, site, sites, before, self.settings.batch)
                removed.add("crops", cleared)
                removed.objects += cleared
                self.metrics.objects.inc(cleared)
                if cleared < self.settings.batch:
                    break

    async def _logs(self, policies: Policies, now: datetime, removed: Removed) -> None:
        sites = list(policies.sites)
        audit_before = now - timedelta(days=policies.audit_days)
        await self._batches(removed, "audit_log", "ts < %(before)s", {"before": audit_before})
        for table, column, attr, extra in (
            ("dead_letters", "received_at", "dead_letters_days", ""),
            ("deliveries", "created_at", "deliveries_days", " AND status <> 'pending'"),
        ):
            for site in sites:
                before = now - timedelta(days=getattr(policies.sites[site], attr))
                where = f"site_id = %(site)s AND {column} < %(before)s{extra}"
                await self._batches(removed, table, where, {"site": site, "before": before})
            before = now - timedelta(days=getattr(policies.default, attr))
            where = f"(site_id IS NULL OR NOT (site_id = ANY(%(sites)s))) AND {column} < %(before)s{extra}"
            await self._batches(removed, table, where, {"sites": sites, "before": before})

    async def _batches(self, removed: Removed, table: str, where: str, params: dict[str, Any]) -> None:
        while True:
            async with self.pool.connection() as conn:
                count = await repo.delete_rows(conn, table, where, params, self.settings.batch)
            removed.add(table, count)
            self.metrics.rows.labels(table).inc(count)
            if count < self.settings.batch:
                break

    async def _finish(self, removed: Removed) -> None:
        """Delete the queued objects now (the sweeper would within minutes) and set the gauges."""
        for _ in range(1000):
            try:
                if await self.cleanup.sweep_once(min_age_s=0) > 0 or not await self._orphans_left():
                    break
            except psycopg.Error as err:
                log.warning("retention_objects_deferred", extra={"error": str(err)[:200]})
                break
        async with self.pool.connection() as conn:
            oldest = await repo.oldest(conn)
        now = self.clock()
        for table, at in oldest.items():
            self.metrics.oldest.labels(table).set(now - at.timestamp() if at is not None else 0)

    async def _orphans_left(self) -> bool:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pending_deletions WHERE person_id IS NULL)"
            )
            row = await cur.fetchone()
        return bool(row and row[0])
