"""The distributor worker of each replica: woken by NOTIFY at commit, and by a poll as a safety net.
central/lifespan.py starts it when central has an MQTT client (the publisher) and stops it first.

Each pass: publish queued commands (erase), publish every gallery with unpublished versions (in
order, central/distribution/publishing.py) and keep its snapshot policy; every `distribution_poll_s`
also look for galleries whose published version has no snapshot yet (the age rule), and every
`resync_check_s` run the resync check. A failing pass (broker or database away) is logged and retried
with a growing delay (up to a minute); nothing is lost, since the outbox is the database.

The LISTEN connection (channel `facegate_distribution`, notified by triggers on `gallery_changes` and
`distribution_commands`) is separate from the pool and reconnects by itself; while it is down the
poll still finds everything, only later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import psycopg

from central.db.pool import AsyncPool
from central.distribution import repository as repo
from central.distribution.commands import publish_commands
from central.distribution.publisher import Publisher
from central.distribution.publishing import publish_gallery, unpublished_galleries
from central.distribution.resync import check_resync
from central.distribution.snapshot_policy import SnapshotPolicy
from central.settings import CentralSettings
from common.errors import FacegateError

log = logging.getLogger("central.distribution")

MAX_BACKOFF_S = 60.0


@dataclass(frozen=True, slots=True)
class DistributionSettings:
    """FACEGATE_DISTRIBUTION_*, _SNAPSHOT_* and _RESYNC_* (docs/configuration.md), and the database URL
    of the LISTEN connection."""

    database_url: str
    distribution_poll_s: float = 5.0
    distribution_batch: int = 100
    snapshot_every_changes: int = 50
    snapshot_every_s: float = 3600.0
    resync_check_s: float = 15.0
    resync_grace_s: float = 60.0
    resync_min_interval_s: float = 300.0


def distribution_settings(settings: CentralSettings) -> DistributionSettings:
    return DistributionSettings(
        database_url=settings.database_url,
        distribution_poll_s=settings.distribution_poll_s,
        distribution_batch=settings.distribution_batch,
        snapshot_every_changes=settings.snapshot_every_changes,
        snapshot_every_s=settings.snapshot_every_s,
        resync_check_s=settings.resync_check_s,
        resync_grace_s=settings.resync_grace_s,
        resync_min_interval_s=settings.resync_min_interval_s,
    )


class Distributor:
    """Publishes what the database says is unpublished; `run()` forever (cancel it to stop)."""

    def __init__(
        self, pool: AsyncPool, publisher: Publisher, policy: SnapshotPolicy, settings: DistributionSettings
    ) -> None:
        self.pool = pool
        self.publisher = publisher
        self.policy = policy
        self.settings = settings
        self.wake = asyncio.Event()
        self._next_resync = 0.0

    def start(self) -> list[asyncio.Task[None]]:
        """Start the listener and the publishing loop (call from the app's event loop)."""
        return [
            asyncio.create_task(self.listen(), name="distribution-listen"),
            asyncio.create_task(self.run(), name="distribution"),
        ]

    async def run(self) -> None:
        settings = self.settings
        delay = settings.distribution_poll_s
        while True:
            try:
                await self.pass_once()
                delay = settings.distribution_poll_s
            except (FacegateError, psycopg.Error, OSError) as err:
                log.warning("distribution_failed", extra={"error": str(err)[:300], "retry_s": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), delay)

    async def pass_once(self) -> None:
        """One pass over everything unpublished (and, when due, the snapshot ages and the resync check)."""
        self.wake.clear()
        settings = self.settings
        while await publish_commands(self.pool, self.publisher):
            pass
        for gallery in await unpublished_galleries(self.pool):
            while await publish_gallery(self.pool, self.publisher, gallery, settings.distribution_batch):
                pass
            await self.policy.maintain(self.publisher, gallery)
        for gallery in await self.policy.galleries_without_current_snapshot():
            await self.policy.maintain(self.publisher, gallery)
        if time.monotonic() >= self._next_resync:
            self._next_resync = time.monotonic() + settings.resync_check_s
            await check_resync(
                self.pool,
                self.publisher,
                self.policy,
                settings.resync_min_interval_s,
                settings.resync_grace_s,
            )

    async def listen(self) -> None:
        """Set `wake` on every notification; reconnect (after a delay) when the connection fails."""
        delay = 1.0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.settings.database_url, autocommit=True
                ) as conn:
                    await repo.listen(conn)
                    delay = 1.0
                    self.wake.set()  # anything committed while not listening
                    async for _ in conn.notifies():
                        self.wake.set()
            except psycopg.Error as err:
                log.warning("distribution_listen_failed", extra={"error": str(err)[:300], "retry_s": delay})
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)
