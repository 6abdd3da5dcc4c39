"""Fleet state from MQTT: each edge's retained status and its heartbeats update its `edges` row.

- `facegate/v1/+/+/status` (retained, QoS 1; the Last Will publishes state=offline): status, and when
  online also last_seen, software and model versions and gallery versions. A plain (not shared)
  subscription: a shared one gets no retained messages, and every replica writing the same row is
  harmless.
- `facegate/v1/+/+/heartbeat` (QoS 0, shared): status online, last_seen, gallery versions, and `stats`
  (the heartbeat's figures: cameras {state, fps, frames, dropped_frames}, latency_ms_p50/p95,
  outbox_backlog, outbox_unconfirmed, cpu_percent, gpu_percent, uptime_s) with `stats_at`.

Times are the database's clock (edges' clocks may be off). A message that is malformed, names another
edge than its topic, or comes from an unregistered edge goes to dead letters. Messages queue on the
event loop and one task writes them; the heartbeat backlog is bounded (the oldest are dropped).

It lives with ingest (its SQL is in central/ingest/repository.py): like the events, these are messages
from the edges, checked and dead-lettered the same way. central/lifespan.py starts and stops it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

import msgspec
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from central.db.pool import AsyncPool
from central.http.request import json_too_deep
from central.ingest import repository as repo
from central.ingest.isolation import describe, transient
from central.ingest.validate import MALFORMED, TOPIC_MISMATCH, UNKNOWN_EDGE, Rejected
from central.metrics import Metrics
from common.messages import MAX_MESSAGE_DEPTH, Heartbeat, MessageError, Status, decode
from common.mqtt.aio import AsyncMqttClient
from common.mqtt.incoming import Incoming
from common.mqtt.payload import truncate
from common.topics import TopicError, parse_topic

log = logging.getLogger("central.fleet.state")  # the logger these events have always had
STATUS_FILTER = "facegate/v1/+/+/status"
HEARTBEAT_FILTER = "facegate/v1/+/+/heartbeat"
MAX_QUEUED = 10_000
RETRY_S = 2.0

_STATS_SKIP = ("schema", "id", "ts", "site", "edge", "galleries")


class FleetState:
    """`start()` subscribes and runs the writer task; `stop()` cancels it."""

    def __init__(self, mqtt: AsyncMqttClient, pool: AsyncPool, metrics: Metrics) -> None:
        self.mqtt, self.pool, self.metrics = mqtt, pool, metrics
        self.updated = 0
        self._queue: deque[Incoming] = deque(maxlen=MAX_QUEUED)
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> asyncio.Task[None]:
        self.mqtt.subscribe(STATUS_FILTER, self._on_message, qos=1)
        self.mqtt.subscribe(HEARTBEAT_FILTER, self._on_message, qos=0, shared=True)
        self._task = asyncio.create_task(self.run(), name="fleet-state")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _on_message(self, message: Incoming) -> None:
        self._queue.append(message)
        self._arrived.set()

    async def run(self) -> None:
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            while self._queue:
                batch = list(self._queue)
                self._queue.clear()
                try:
                    await self._write(batch)
                except Exception:  # the top of the worker loop: the next status or heartbeat corrects it
                    log.exception("fleet_state_failed", extra={"messages": len(batch)})

    async def _write(self, batch: list[Incoming]) -> None:
        """Apply the messages in order in one transaction; retried while PostgreSQL is unreachable."""
        while True:
            try:
                async with self.pool.connection() as conn:
                    dead = [d for m in batch if (d := await _apply_one(conn, m)) is not None]
                    await repo.write_dead_letters(conn, dead)
                break
            except Exception as err:
                if not transient(err):
                    raise
                log.warning("fleet_state_retry", extra={"error": str(err)[:300], "messages": len(batch)})
                await asyncio.sleep(RETRY_S)
        self.updated += len(batch) - len(dead)
        for item in dead:
            self.metrics.dead_letters.labels(reason=item.reason).inc()
            log.warning(
                "fleet_dead_letter",
                extra={
                    "reason": item.reason,
                    "topic": item.message.topic,
                    "payload": truncate(item.message.payload),
                },
            )


async def _apply_one(conn: AsyncConnection[Any], message: Incoming) -> Rejected | None:
    """`apply` in a savepoint: any error but a dependency failing (central/ingest/isolation.py)
    dead-letters this message only."""
    try:
        async with conn.transaction():
            return await apply(conn, message)
    except Exception as err:
        if transient(err):
            raise
        return Rejected(message, MALFORMED, describe(err))


async def apply(conn: AsyncConnection[Any], message: Incoming) -> Rejected | None:
    """Update the edge's row from one status or heartbeat; the dead letter when it is refused."""
    try:
        topic = parse_topic(message.topic)
        kind: type[Status] | type[Heartbeat] = Status if topic.kind == "status" else Heartbeat
    except TopicError as err:
        return Rejected(message, TOPIC_MISMATCH, str(err))
    if not message.payload:  # a cleared retained status
        return None
    if json_too_deep(message.payload, MAX_MESSAGE_DEPTH):
        return Rejected(message, MALFORMED, f"nested more than {MAX_MESSAGE_DEPTH} levels deep")
    try:
        decoded = decode(message.payload, kind)
    except MessageError as err:
        return Rejected(message, MALFORMED, str(err)[:500])
    if (decoded.site, decoded.edge) != (topic.site, topic.edge):
        return Rejected(message, TOPIC_MISMATCH, f"payload names {decoded.site}/{decoded.edge}")
    params: dict[str, Any] = {"site": topic.site, "edge": topic.edge, "galleries": Jsonb(decoded.galleries)}
    if isinstance(decoded, Heartbeat):
        stats = {k: v for k, v in msgspec.to_builtins(decoded).items() if k not in _STATS_SKIP}
        updated = await repo.edge_heartbeat(conn, {**params, "stats": Jsonb(stats)})
    elif decoded.state == "online":
        versions = {
            "software": decoded.software,
            "detector": decoded.detector,
            "recognizer": decoded.recognizer,
        }
        updated = await repo.edge_online(conn, {**params, **versions})
    else:
        updated = await repo.edge_offline(conn, params)
    if updated == 0:
        return Rejected(message, UNKNOWN_EDGE, f"edge {topic.site}/{topic.edge} is not registered")
    return None
