"""What other domains ask of distribution: erase commands queued in the erasure's own transaction.

The rest of distribution is the distributor worker (central/distribution/distributor.py), which
publishes gallery versions, snapshots' manifests and queued commands; central/lifespan.py runs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection

from central.distribution import repository as repo


class DistributionService:
    """The erase-command outbox (central/distribution/commands.py publishes it)."""

    async def queue_erase(
        self, conn: AsyncConnection[Any], person_id: UUID, galleries: Sequence[str]
    ) -> None:
        """Queue erase commands for the edges of every site of `galleries`, in the caller's transaction."""
        if galleries:
            await repo.queue_erase(conn, person_id, galleries)
