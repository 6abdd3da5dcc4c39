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
   too: the edge deletes its outbox rows on it) and every event of it refused for good (`rejected`),
   then hand the new events to the live fan-out.

PostgreSQL or object storage failing (central/ingest/isolation.py `transient`): the batch is kept,
nothing is acknowledged, and the step is retried with a growing delay (jittered, capped). Any other
error is one message's: the batch is split in halves, down to the message that fails alone, which is
dead-lettered; the rest is stored and acknowledged. Stopping cancels the consumer; unacknowledged
messages stay with the broker's session and come again on the next connect (inserts are idempotent on
the event id). `progress` (central/ingest/progress.py) tells when messages wait and nothing completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from psycopg import AsyncConnection

from central.db.pool import AsyncPool
from central.events.schemas import EventRead
from central.ingest.batch import Committed, InCommit, commit, store_crops
from central.ingest.isolation import describe, refused_for_good, transient
from central.ingest.progress import Progress
from central.ingest.registry import EdgeRegistry
from central.ingest.validate import MALFORMED, REJECTABLE, Accepted, Checker, Rejected, unknown
from central.metrics import Metrics
from central.settings import CentralSettings
from central.storage import ObjectStore
from common.backoff import Backoff
from common.messages import Receipt, RejectedEvent, encode
from common.mqtt.aio import AsyncMqttClient
from common.mqtt.errors import MqttError
from common.mqtt.incoming import Incoming
from common.mqtt.payload import truncate
from common.topics import edge_topic

log = logging.getLogger("central.ingest")
EVENTS_FILTER = "facegate/v1/+/+/events"

OnCommit = Callable[[list[dict[str, Any]]], Awaitable[None]]
"""Receives the newly stored events (EventRead as JSON-ready dicts) after each commit: live fan-out."""
Expiry = Callable[[AsyncConnection[Any], list[Accepted]], Awaitable[tuple[list[Accepted], list[Accepted]]]]
"""Splits accepted events into (kept, expired): expired ones are older than their site's retention
policy (central/retention/expiry.py); they are receipted to the edge (which drops them) and never stored."""


@dataclass(frozen=True, slots=True)
class IngestSettings:
    batch_size: int = 500
    flush_s: float = 0.2
    max_crop_bytes: int = 256 * 1024
    edge_cache_s: float = 5.0
    retry_min_s: float = 0.5
    retry_max_s: float = 30.0
    parallel: int = 2  # batches stored at once (each on its own connection)
    stall_s: float = 60.0  # messages waiting this long with nothing acknowledged: stalled


class Ingest:
    """`start()` subscribes and runs the consumer task; `stop()` cancels it (nothing more is acked)."""

    def __init__(  # noqa: PLR0917  # its dependencies, wired by central/lifespan.py or the benchmark
        self,
        mqtt: AsyncMqttClient,
        pool: AsyncPool,
        store: ObjectStore,
        metrics: Metrics,
        settings: IngestSettings,
        on_commit: OnCommit | None = None,
        in_commit: InCommit | None = None,
        expiry: Expiry | None = None,
    ) -> None:
        self.mqtt, self.pool, self.store, self.metrics = mqtt, pool, store, metrics
        self.settings, self.on_commit, self.in_commit = settings, on_commit, in_commit
        self.expiry = expiry
        self.registry = EdgeRegistry(settings.edge_cache_s)
        self._checker = Checker()
        self.batches = self.stored = self.duplicates = self.retries = 0
        self._queue: deque[Incoming] = deque()
        self._arrived = asyncio.Event()
        self._wanted = 1  # queue length that wakes the collector
        self._backoff = Backoff(settings.retry_min_s, settings.retry_max_s)
        self._task: asyncio.Task[None] | None = None
        self._committing: set[asyncio.Task[None]] = set()
        self.progress = Progress(settings.stall_s)
        metrics.ingest_waiting.set_function(lambda: self.progress.waiting)
        metrics.ingest_stalled.set_function(self.progress.stalled_for)

    def start(self) -> asyncio.Task[None]:
        self.mqtt.subscribe(EVENTS_FILTER, self._on_message, qos=1, shared=True, manual_ack=True)
        self._task = asyncio.create_task(self.run(), name="ingest")
        return self._task

    async def stop(self) -> None:
        """Cancel the collector and the batches being stored (their messages stay unacknowledged)."""
        tasks = [*self._committing, *([self._task] if self._task is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _on_message(self, message: Incoming) -> None:
        queue = self._queue
        queue.append(message)
        self.progress.received()
        if len(queue) >= self._wanted:  # wake the collector only when it can act: not per message
            self._arrived.set()

    async def run(self) -> None:
        """Collect batches; up to `parallel` of them are checked, stored and acknowledged at once, so
        the next batch is collected (and PostgreSQL works on one) while another commits."""
        slots = asyncio.Semaphore(max(self.settings.parallel, 1))
        while True:
            await slots.acquire()
            batch = await self._collect()
            task = asyncio.create_task(self._guarded(batch, slots))
            self._committing.add(task)
            task.add_done_callback(self._committing.discard)

    async def _guarded(self, batch: list[Incoming], slots: asyncio.Semaphore) -> None:
        try:
            await self._process(batch)
        except Exception:  # the top of a batch's task: unacknowledged messages come back on reconnect
            log.exception("ingest_batch_failed", extra={"messages": len(batch)})
        finally:
            slots.release()

    async def _collect(self) -> list[Incoming]:
        """Up to batch_size messages: waits for the first, then at most flush_s for the batch to fill."""
        size, queue = self.settings.batch_size, self._queue
        if not queue:
            await self._wait_for(1, None)
        if len(queue) < size:
            await self._wait_for(size, self.settings.flush_s)
        return [queue.popleft() for _ in range(min(size, len(queue)))]

    async def _wait_for(self, count: int, timeout: float | None) -> None:
        """Until `count` messages are queued, or `timeout` passed."""
        self._wanted = count
        self._arrived.clear()
        try:
            with contextlib.suppress(TimeoutError):  # the flush time passed: take what is there
                await asyncio.wait_for(self._arrived.wait(), timeout)
        finally:
            self._wanted = 1

    async def _process(self, batch: list[Incoming]) -> None:
        """Store the batch (retrying while a dependency fails), then ack, receipt and fan out."""
        accepted, rejected = self._check(batch)
        while True:
            try:
                committed, stored = await self._isolated(accepted, rejected)
                break
            except Exception as err:
                if not transient(err):
                    raise
                self.retries += 1
                delay = self._backoff.next()
                log.warning(
                    "ingest_batch_retry",
                    extra={"error": str(err)[:300], "messages": len(batch), "retry_in_s": round(delay, 2)},
                )
                await asyncio.sleep(delay)
        self._backoff.reset()
        self.mqtt.ack_all(batch)
        self.progress.done(len(batch))
        self._count(committed, stored)
        self._send_receipts(stored, committed.dead)
        if self.on_commit is not None and committed.rows:
            await self.on_commit(_event_dicts(committed))

    async def _isolated(
        self, accepted: list[Accepted], rejected: list[Rejected]
    ) -> tuple[Committed, list[Accepted]]:
        """`_store`, splitting the batch in halves on an error that is not transient, down to the single
        message that fails, which is dead-lettered. Raises the transient errors (the caller retries)."""
        try:
            return await self._store(accepted, rejected)
        except Exception as err:
            if transient(err):
                raise
            if len(accepted) > 1:
                log.warning("ingest_batch_split", extra={"error": describe(err), "events": len(accepted)})
                half = len(accepted) // 2
                first, first_stored = await self._isolated(accepted[:half], rejected)
                second, second_stored = await self._isolated(accepted[half:], [])
                return first.merge(second), [*first_stored, *second_stored]
            certain = refused_for_good(err)  # else the edge is not told: it resends, bounded by the cap
            refused = [
                Rejected(
                    a.message,
                    MALFORMED,
                    describe(err),
                    (a.event.site, a.event.edge) if certain else None,
                    str(a.event.id) if certain else None,
                )
                for a in accepted
            ]
            return await self._dead_only([*rejected, *refused]), []

    async def _dead_only(self, dead: list[Rejected]) -> Committed:
        """Store dead letters alone; if even that fails for a reason that is not transient, they are
        logged and counted without a row (acknowledged all the same: nothing may block ingest)."""
        try:
            committed, _ = await self._store([], dead)
        except Exception as err:
            if transient(err):
                raise
            log.error("ingest_dead_letters_unstored", extra={"error": describe(err), "messages": len(dead)})
            return Committed(dead=dead)
        return committed

    def _check(self, batch: list[Incoming]) -> tuple[list[Accepted], list[Rejected]]:
        accepted: list[Accepted] = []
        rejected: list[Rejected] = []
        check = self._checker.check
        for message in batch:
            result = check(message)  # never raises: any error is that message's dead letter
            if isinstance(result, Accepted):
                accepted.append(result)
            else:
                rejected.append(result)
        return accepted, rejected

    async def _store(
        self, accepted: list[Accepted], rejected: list[Rejected]
    ) -> tuple[Committed, list[Accepted]]:
        """Check the edges are registered, store the crops, commit; returns what was committed and the
        events committed (new or duplicate). Raises what failed (the caller retries or splits)."""
        accepted = list(accepted)
        async with self.pool.connection() as conn:
            edges = {(a.event.site, a.event.edge) for a in accepted}
            if edges:
                strangers = unknown(accepted, await self.registry.known_of(conn, edges))
                if strangers:  # dead letters in the order the messages came
                    rejected = sorted([*rejected, *strangers], key=lambda r: r.message.received)
            expired: list[Accepted] = []
            if self.expiry is not None and accepted:  # past their site's retention: receipted, not stored
                accepted, expired = await self.expiry(conn, accepted)
            crops = await store_crops(conn, self.store, accepted, self.settings.max_crop_bytes)
        async with self.pool.connection() as conn:
            committed = await commit(conn, accepted, crops, rejected, self.in_commit)
        if len(committed.dead) > len(rejected):  # PostgreSQL refused some events one by one
            refused = {id(d.message) for d in committed.dead}
            accepted = [a for a in accepted if id(a.message) not in refused]
        return committed, [*accepted, *expired]

    def _count(self, committed: Committed, accepted: list[Accepted]) -> None:
        """Metrics once per batch: a labelled child is looked up once per site or reason."""
        metrics = self.metrics
        self.batches += 1
        self.stored += len(committed.rows)
        self.duplicates += len(accepted) - len(committed.rows)
        metrics.ingest_batch_size.observe(len(accepted))
        per_site: dict[str, int] = {}
        observe = metrics.ingest_lag.observe
        now = datetime.now(UTC).timestamp()
        for event in committed.rows:
            per_site[event.site] = per_site.get(event.site, 0) + 1
            observe(max(0.0, now - event.ts.timestamp()))
        for site, count in per_site.items():
            metrics.events_ingested.labels(site=site).inc(count)
        per_reason: dict[str, int] = {}
        for dead in committed.dead:
            per_reason[dead.reason] = per_reason.get(dead.reason, 0) + 1
            log.warning(
                "ingest_dead_letter",
                extra={
                    "reason": dead.reason,
                    "topic": dead.message.topic,
                    "detail": dead.detail[:200],
                    "payload": truncate(dead.message.payload),
                },
            )
        for reason, count in per_reason.items():
            metrics.dead_letters.labels(reason=reason).inc(count)

    def _send_receipts(self, accepted: list[Accepted], dead: list[Rejected]) -> None:
        """One Receipt per edge naming all its committed ids (new and duplicate), each once, and its
        events refused for good (`rejected`: REJECTABLE dead letters naming an event id). Queued
        without waiting for the broker's PUBACK: waiting would stall the next batch behind the backlog
        the broker is sending, and a lost receipt is repaired by the edge, which resends the events
        after its timeout (they are receipted then)."""
        per_edge: dict[tuple[str, str], dict[str, None]] = {}
        refused: dict[tuple[str, str], dict[str, str]] = {}
        for item in accepted:
            per_edge.setdefault((item.event.site, item.event.edge), {})[str(item.event.id)] = None
        for letter in dead:
            if letter.origin is not None and letter.event_id is not None and letter.reason in REJECTABLE:
                refused.setdefault(letter.origin, {})[letter.event_id] = letter.reason
        for site, edge in {**per_edge, **refused}:
            ids = list(per_edge.get((site, edge), {}))
            rejected = [RejectedEvent(id=i, reason=r) for i, r in refused.get((site, edge), {}).items()]
            try:
                self.mqtt.publish_nowait(
                    edge_topic(site, edge, "receipts"), encode(Receipt(event_ids=ids, rejected=rejected))
                )
            except MqttError as err:
                log.warning("ingest_receipt_failed", extra={"site": site, "edge": edge, "error": str(err)})


def _event_dicts(committed: Committed) -> list[dict[str, Any]]:
    received = datetime.now(UTC)
    crops, erased = committed.crops, committed.erased
    return [
        msgspec.to_builtins(
            EventRead(
                id=e.id,
                ts=e.ts,
                received_at=received,
                site=e.site,
                edge=e.edge,
                camera=e.camera,
                seq=e.seq,
                track_id=e.track_id,
                kind=e.kind,
                person_id=e.person_id,
                score=e.score,
                threshold=e.threshold,
                quality=e.quality,
                bbox=list(e.bbox),
                model_id=e.model,
                gallery_id=e.gallery,
                gallery_version=e.gallery_version,
                first_seen=e.first_seen,
                has_crop=e.id in crops,
                erased_at=received if e.id in erased else None,
            )
        )
        for e in committed.rows
    ]


def ingest_settings(settings: CentralSettings) -> IngestSettings:
    """IngestSettings from CentralSettings' ingest_* fields."""
    return IngestSettings(
        batch_size=settings.ingest_batch_size,
        flush_s=settings.ingest_flush_s,
        max_crop_bytes=settings.ingest_max_crop_bytes,
        edge_cache_s=settings.ingest_edge_cache_s,
        retry_max_s=settings.ingest_retry_max_s,
        stall_s=settings.ingest_stall_s,
    )
