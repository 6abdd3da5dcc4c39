"""The distributor task of each replica: woken by NOTIFY at commit, and by a poll as a safety net.

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

import psycopg

from central.distribution.commands import publish_commands
from central.distribution.publisher import Publisher
from central.distribution.publishing import publish_gallery, unpublished_galleries
from central.distribution.resync import check_resync
from central.distribution.snapshot_policy import galleries_without_current_snapshot, maintain_snapshot
from central.runtime import Runtime
from common.errors import FacegateError

log = logging.getLogger("central.distribution")

CHANNEL = "facegate_distribution"
MAX_BACKOFF_S = 60.0


class Distributor:
    """Publishes what the database says is unpublished; `run()` forever (cancel it to stop)."""

    def __init__(self, runtime: Runtime, publisher: Publisher) -> None:
        self.runtime = runtime
        self.publisher = publisher
        self.wake = asyncio.Event()
        self._next_resync = 0.0

    def start(self) -> list[asyncio.Task[None]]:
        """Start the listener and the publishing loop (call from the app's event loop)."""
        return [
            asyncio.create_task(self.listen(), name="distribution-listen"),
            asyncio.create_task(self.run(), name="distribution"),
        ]

    async def run(self) -> None:
        settings = self.runtime.settings
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
        while await publish_commands(self.runtime, self.publisher):
            pass
        for gallery in await unpublished_galleries(self.runtime):
            while await publish_gallery(self.runtime, self.publisher, gallery):
                pass
            await maintain_snapshot(self.runtime, self.publisher, gallery)
        for gallery in await galleries_without_current_snapshot(self.runtime):
            await maintain_snapshot(self.runtime, self.publisher, gallery)
        if time.monotonic() >= self._next_resync:
            self._next_resync = time.monotonic() + self.runtime.settings.resync_check_s
            await check_resync(self.runtime, self.publisher)

    async def listen(self) -> None:
        """Set `wake` on every notification; reconnect (after a delay) when the connection fails."""
        delay = 1.0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.runtime.settings.database_url, autocommit=True
                ) as conn:
                    await conn.execute("LISTEN facegate_distribution")  # CHANNEL
                    delay = 1.0
                    self.wake.set()  # anything committed while not listening
                    async for _ in conn.notifies():
                        self.wake.set()
            except psycopg.Error as err:
                log.warning("distribution_listen_failed", extra={"error": str(err)[:300], "retry_s": delay})
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)


def start_distribution(runtime: Runtime, publisher: Publisher) -> list[asyncio.Task[None]]:
    """Start a distributor on this replica; the returned tasks belong in `runtime.tasks`."""
    return Distributor(runtime, publisher).start()
