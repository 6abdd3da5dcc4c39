"""The ingest consumer: `facegate/v1/+/+/events` -> checked batches -> PostgreSQL, acks, receipts.

Messages arrive through a shared subscription (QoS 1, manual acknowledgement) and queue on the event loop;
the broker sends at most `Receive Maximum` unacknowledged ones, which bounds the queue. A batch is cut at
`batch_size` messages or `flush_s` after its first message. Then:

1. check each message (validate.py): accepted events, or dead letters (malformed, topic_mismatch,
   unknown_edge);
2. put the new events' crops in object storage, then commit events and dead letters in one transaction
   (batch.py);
3. acknowledge every message of the batch (dead letters too: they must not come back forever);
4. publish one Receipt per edge naming every committed event id of that edge in the batch (duplicates
   too: the edge deletes its outbox rows on it), then hand the new events to the live fan-out.

PostgreSQL or object storage failing: the batch is kept, nothing is acknowledged, and the step is retried
with a growing delay (jittered, capped). Stopping cancels the consumer; unacknowledged messages stay with
the broker's session and come again on the next connect (inserts are idempotent on the event id).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import psycopg
from psycopg_pool import PoolTimeout

from central.db.pool import AsyncPool
from central.events.schemas import EventRead
from central.http.metrics import Metrics
from central.ingest.batch import Committed, commit, store_crops
from central.ingest.registry import EdgeRegistry
from central.ingest.validate import Accepted, Rejected, check
from central.mqtt.client import CentralMqtt, Incoming, MqttUnavailable
from central.settings import CentralSettings
from central.storage import ObjectStore, StorageError
from common.messages import Receipt, encode
from common.topics import edge_topic
from edge.mqtt import Backoff, truncate

log = logging.getLogger("central.ingest")
EVENTS_FILTER = "facegate/v1/+/+/events"
MAX_RECEIPTING = 8
RETRYABLE = (psycopg.Error, PoolTimeout, StorageError, OSError)

OnCommit = Callable[[list[dict[str, Any]]], Awaitable[None]]
"""Receives the newly stored events (EventRead as JSON-ready dicts) after each commit: live fan-out."""


@dataclass(frozen=True, slots=True)
class IngestSettings:
    batch_size: int = 500
    flush_s: float = 0.2
    max_crop_bytes: int = 256 * 1024
    edge_cache_s: float = 5.0
    retry_min_s: float = 0.5
    retry_max_s: float = 30.0


class Ingest:
    """`start()` subscribes and runs the consumer task; `stop()` cancels it (nothing more is acked)."""

    def __init__(  # noqa: PLR0917  # its dependencies, wired by the runtime or the benchmark
        self,
        mqtt: CentralMqtt,
        pool: AsyncPool,
        store: ObjectStore,
        metrics: Metrics,
        settings: IngestSettings,
        on_commit: OnCommit | None = None,
    ) -> None:
        self.mqtt, self.pool, self.store, self.metrics = mqtt, pool, store, metrics
        self.settings, self.on_commit = settings, on_commit
        self.registry = EdgeRegistry(settings.edge_cache_s)
        self.batches = self.stored = self.duplicates = self.retries = 0
        self._queue: deque[Incoming] = deque()
        self._arrived = asyncio.Event()
        self._backoff = Backoff(settings.retry_min_s, settings.retry_max_s)
        self._task: asyncio.Task[None] | None = None
        self._receipting: set[asyncio.Task[None]] = set()

    def start(self) -> asyncio.Task[None]:
        self.mqtt.subscribe(EVENTS_FILTER, self._on_message, qos=1, shared=True, manual_ack=True)
        self._task = asyncio.create_task(self.run(), name="ingest")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.gather(*self._receipting, return_exceptions=True)

    def _on_message(self, message: Incoming) -> None:
        self._queue.append(message)
        self._arrived.set()

    async def run(self) -> None:
        while True:
            batch = await self._collect()
            try:
                await self._process(batch)
            except Exception:  # the top of the worker loop: unacknowledged messages come back on reconnect
                log.exception("ingest_batch_failed", extra={"messages": len(batch)})

    async def _collect(self) -> list[Incoming]:
        """Up to batch_size messages: waits for the first, then at most flush_s for more."""
        size, loop = self.settings.batch_size, asyncio.get_running_loop()
        batch: list[Incoming] = []
        deadline: float | None = None
        while len(batch) < size:
            while self._queue and len(batch) < size:
                batch.append(self._queue.popleft())
            if len(batch) >= size:
                break
            self._arrived.clear()
            if deadline is None and batch:
                deadline = loop.time() + self.settings.flush_s
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                break
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                break
        return batch

    async def _process(self, batch: list[Incoming]) -> None:
        """Store the batch (retrying while a dependency fails), then ack, receipt and fan out."""
        while True:
            try:
                committed, accepted = await self._store(batch)
                break
            except RETRYABLE as err:
                self.retries += 1
                delay = self._backoff.next()
                log.warning(
                    "ingest_batch_retry",
                    extra={"error": str(err)[:300], "messages": len(batch), "retry_in_s": round(delay, 2)},
                )
                await asyncio.sleep(delay)
        self._backoff.reset()
        for message in batch:
            self.mqtt.ack(message)
        self._count(committed, accepted)
        await self._send_receipts(accepted)
        if self.on_commit is not None and committed.rows:
            await self.on_commit(_event_dicts(committed))

    async def _store(self, batch: Sequence[Incoming]) -> tuple[Committed, list[Accepted]]:
        accepted: list[Accepted] = []
        rejected: list[Rejected] = []
        async with self.pool.connection() as conn:

            async def known(site: str, edge: str) -> bool:
                return await self.registry.known(conn, site, edge)

            for message in batch:
                result = await check(message, known)
                (accepted if isinstance(result, Accepted) else rejected).append(result)  # type: ignore[arg-type]
            crops = await store_crops(conn, self.store, accepted, self.settings.max_crop_bytes)
        async with self.pool.connection() as conn:
            committed = await commit(conn, accepted, crops, rejected)
        refused = {id(d.message) for d in committed.dead}
        return committed, [a for a in accepted if id(a.message) not in refused]

    def _count(self, committed: Committed, accepted: list[Accepted]) -> None:
        metrics, now = self.metrics, datetime.now(UTC)
        self.batches += 1
        self.stored += len(committed.rows)
        self.duplicates += len(accepted) - len(committed.rows)
        metrics.ingest_batch_size.observe(len(accepted))
        per_site: dict[str, int] = {}
        for row in committed.rows:
            per_site[row.site_id] = per_site.get(row.site_id, 0) + 1
            metrics.ingest_lag.observe(max(0.0, (now - row.ts).total_seconds()))
        for site, count in per_site.items():
            metrics.events_ingested.labels(site=site).inc(count)
        for dead in committed.dead:
            metrics.dead_letters.labels(reason=dead.reason).inc()
            log.warning(
                "ingest_dead_letter",
                extra={
                    "reason": dead.reason,
                    "topic": dead.message.topic,
                    "detail": dead.detail[:200],
                    "payload": truncate(dead.message.payload),
                },
            )

    async def _send_receipts(self, accepted: list[Accepted]) -> None:
        """Receipts go out in the background (waiting for their PUBACKs would stall the next batch);
        at most MAX_RECEIPTING batches' receipts are in flight."""
        while len(self._receipting) >= MAX_RECEIPTING:
            await asyncio.wait(self._receipting, return_when=asyncio.FIRST_COMPLETED)
        task = asyncio.create_task(self._receipts(accepted))
        self._receipting.add(task)
        task.add_done_callback(self._receipting.discard)

    async def _receipts(self, accepted: list[Accepted]) -> None:
        """One Receipt per edge with all its committed ids (new and duplicate), each once."""
        per_edge: dict[tuple[str, str], dict[str, None]] = {}
        for item in accepted:
            per_edge.setdefault((item.event.site, item.event.edge), {})[item.event.id] = None
        results = await asyncio.gather(
            *(
                self.mqtt.publish(edge_topic(site, edge, "receipts"), encode(Receipt(event_ids=list(ids))))
                for (site, edge), ids in per_edge.items()
            ),
            return_exceptions=True,
        )
        for (site, edge), result in zip(per_edge, results, strict=True):
            if isinstance(
                result, MqttUnavailable
            ):  # the edge sends the events again; they are receipted then
                log.warning("ingest_receipt_failed", extra={"site": site, "edge": edge, "error": str(result)})
            elif isinstance(result, BaseException):
                log.error("ingest_receipt_error", extra={"site": site, "edge": edge, "error": repr(result)})


def _event_dicts(committed: Committed) -> list[dict[str, Any]]:
    received = datetime.now(UTC)
    return [
        msgspec.to_builtins(
            EventRead(
                id=row.id,
                ts=row.ts,
                received_at=received,
                site=row.site_id,
                edge=row.edge_id,
                camera=row.camera,
                seq=row.seq,
                track_id=row.track_id,
                kind=row.kind,
                person_id=row.person_id,
                score=row.score,
                threshold=row.threshold,
                quality=row.quality,
                bbox=list(row.bbox),
                model_id=row.model_id,
                gallery_id=row.gallery_id,
                gallery_version=row.gallery_version,
                first_seen=row.first_seen,
                has_crop=row.crop_key is not None,
                erased_at=received if row.id in committed.erased else None,
            )
        )
        for row in committed.rows
    ]


def ingest_settings(settings: CentralSettings) -> IngestSettings:
    """IngestSettings from CentralSettings' ingest_* fields."""
    return IngestSettings(
        batch_size=settings.ingest_batch_size,
        flush_s=settings.ingest_flush_s,
        max_crop_bytes=settings.ingest_max_crop_bytes,
        edge_cache_s=settings.ingest_edge_cache_s,
        retry_max_s=settings.ingest_retry_max_s,
    )
