"""What other domains ask of distribution: erase commands queued in the erasure's own transaction, and
a resync command sent to one edge now (the console's button).

The rest of distribution is the distributor worker (central/distribution/distributor.py), which
publishes gallery versions, snapshots' manifests and queued commands; central/lifespan.py runs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection

from central import audit
from central.db.pool import AsyncPool
from central.distribution import repository as repo
from central.errors import Unavailable
from central.principal import Principal, Scope, require
from common.errors import FacegateError
from common.messages import Command, encode
from common.mqtt.aio import AsyncMqttClient
from common.topics import edge_topic


class DistributionService:
    """The erase-command outbox (central/distribution/commands.py publishes it) and resync commands.
    `mqtt` is None when central runs without a broker (then resync answers 503)."""

    def __init__(self, pool: AsyncPool, mqtt: AsyncMqttClient | None) -> None:
        self.pool = pool
        self.mqtt = mqtt

    async def resync_edge(self, principal: Principal, site: str, edge: str, gallery: str) -> None:
        """Tell edge `site/edge` to fetch gallery `gallery`'s snapshot again (admins); waits for the
        broker's PUBACK, Unavailable when there is no broker or it does not answer."""
        require(principal, Scope.ADMIN, site)
        if self.mqtt is None:
            raise Unavailable("central runs without a broker (FACEGATE_MQTT_URL); no command can be sent")
        command = Command(action="resync_gallery", gallery=gallery)
        try:
            await self.mqtt.publish(edge_topic(site, edge, "commands"), encode(command), qos=1)
        except FacegateError as err:
            raise Unavailable(f"the broker did not take the resync command: {err}") from err
        async with self.pool.connection() as conn:
            await audit.record(
                conn, principal, "edge.resync", "edge", f"{site}/{edge}", details={"gallery": gallery}
            )

    async def queue_erase(
        self, conn: AsyncConnection[Any], person_id: UUID, galleries: Sequence[str]
    ) -> None:
        """Queue erase commands for the edges of every site of `galleries`, in the caller's transaction."""
        if galleries:
            await repo.queue_erase(conn, person_id, galleries)
