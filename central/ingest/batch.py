"""Storing one batch of checked events: crops first (object store), then one transaction.

`store_crops` puts the crops of events that are new and whose person is not erased, in parallel threads,
before the commit (so a committed row never names a missing crop). `commit` then writes, in one
transaction: the dead letters, the events (idempotent on the event id) and their embeddings
(`event_embeddings`, facegate.event/1.1; none for an erased person), tombstones for events naming an
erased person (row kept with `erased_at` set, no crop; a crop stored meanwhile is queued in
`pending_deletions`). The people named are locked FOR SHARE first, so an erase (which locks the person
FOR UPDATE) runs wholly before or wholly after the batch. The SQL is in central/ingest/repository.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import anyio.to_thread
import numpy as np
import psycopg
from psycopg import AsyncConnection

from central.ingest import repository as repo
from central.ingest.isolation import refused_for_good, transient
from central.ingest.validate import MALFORMED, Accepted, IngestEvent, Rejected
from central.storage import ObjectStore, crop_key

log = logging.getLogger("central.ingest")
JPEG_MAGIC = b"\xff\xd8\xff"
CROP_THREADS = 8


@dataclass(slots=True)
class Committed:
    """What a committed batch stored: `rows` inserted now (not duplicates), `erased` ids stored as
    tombstones, `crops` event id -> crop key of the rows stored with a crop, `dead` every dead letter
    written (including events PostgreSQL refused one by one)."""

    rows: list[IngestEvent] = field(default_factory=list)
    erased: set[UUID] = field(default_factory=set)
    crops: dict[UUID, str] = field(default_factory=dict)
    dead: list[Rejected] = field(default_factory=list)

    def merge(self, other: Committed) -> Committed:
        """What two halves of a split batch committed, as one."""
        return Committed(
            rows=[*self.rows, *other.rows],
            erased=self.erased | other.erased,
            crops={**self.crops, **other.crops},
            dead=[*self.dead, *other.dead],
        )


async def store_crops(
    conn: AsyncConnection[Any], store: ObjectStore, accepted: Sequence[Accepted], max_bytes: int
) -> dict[UUID, str]:
    """Put the crops of new events whose person is not erased; returns event id -> crop key."""
    wanted: dict[UUID, tuple[str, bytes]] = {}
    people: dict[UUID, UUID | None] = {}
    for item in accepted:
        event = item.event
        jpeg = event.crop_jpeg
        if jpeg is None or event.id in wanted:
            continue
        if len(jpeg) > max_bytes or not jpeg.startswith(JPEG_MAGIC):
            log.warning("ingest_crop_dropped", extra={"event": str(event.id), "bytes": len(jpeg)})
            continue
        wanted[event.id] = (crop_key(event.id, event.ts), jpeg)
        people[event.id] = event.person_id
    if not wanted:
        return {}
    stored = await repo.existing_ids(conn, list(wanted))
    erased = await repo.erased_people(conn, list(people.values()))
    todo = {i: v for i, v in wanted.items() if i not in stored and people[i] not in erased}
    limiter = anyio.CapacityLimiter(CROP_THREADS)

    async def put(key: str, data: bytes) -> None:
        await anyio.to_thread.run_sync(store.put, key, data, "image/jpeg", limiter=limiter)

    await asyncio.gather(*(put(key, data) for key, data in todo.values()))
    return {event_id: key for event_id, (key, _) in todo.items()}


InCommit = Callable[[AsyncConnection[Any], list[IngestEvent], dict[UUID, str]], Awaitable[object]]
"""Called inside the commit's transaction with the events stored now (tombstones left out) and their crop
keys: what it writes commits or rolls back with them (the notification outbox, central/notify/)."""


async def commit(
    conn: AsyncConnection[Any],
    accepted: Sequence[Accepted],
    crops: dict[UUID, str],
    rejected: Sequence[Rejected],
    in_commit: InCommit | None = None,
) -> Committed:
    """One transaction (the caller's `pool.connection()` block): dead letters, events, tombstones, and
    whatever `in_commit` writes of the new events."""
    result = Committed(dead=list(rejected))
    people = sorted({i.event.person_id for i in accepted if i.event.person_id is not None})
    erased = await repo.erased_people(conn, people, lock=True)
    if erased and crops:
        for item in accepted:
            key = crops.get(item.event.id)
            if key is not None and item.event.person_id in erased:  # stored before the erase committed
                del crops[item.event.id]
                await repo.queue_deletion(conn, key, item.event.person_id)
    inserted = await _insert(conn, accepted, crops, erased, result)
    result.rows = [item.event for item in accepted if item.event.id in inserted]
    if erased:
        result.erased = {e.id for e in result.rows if e.person_id in erased}
    result.crops = {i: k for i, k in crops.items() if i in inserted}
    await repo.insert_embeddings(conn, embedding_rows(result.rows, erased))
    await repo.write_dead_letters(conn, result.dead)
    if in_commit is not None and result.rows:
        await in_commit(conn, [e for e in result.rows if e.id not in result.erased], result.crops)
    return result


def embedding_rows(events: Sequence[IngestEvent], erased: set[UUID | None]) -> list[dict[str, Any]]:
    """The `event_embeddings` rows of newly stored events: L2-normalised; none for an erased person's
    event, nor for a vector that is not finite or is all zeros (logged)."""
    rows: list[dict[str, Any]] = []
    for event in events:
        if event.embedding is None or event.person_id in erased:
            continue
        vector = np.frombuffer(event.embedding.vector, dtype="<f4").astype(np.float64)
        norm = float(np.linalg.norm(vector))
        if not np.isfinite(norm) or norm < 1e-6:
            log.warning("ingest_embedding_dropped", extra={"event": str(event.id)})
            continue
        rows.append({
            "id": event.id, "ts": event.ts, "site": event.site, "edge": event.edge, "camera": event.camera,
            "person_id": event.person_id, "model": event.embedding.model,
            "embedding": (vector / norm).tolist(),
        })  # fmt: skip
    return rows


async def _insert(
    conn: AsyncConnection[Any],
    accepted: Sequence[Accepted],
    crops: dict[UUID, str],
    erased: set[UUID | None],
    result: Committed,
) -> set[UUID]:
    """Insert all events; if PostgreSQL refuses a value, insert one by one and dead-letter the refused."""
    if not accepted:
        return set()
    erased_ids = [p for p in erased if p is not None]
    try:
        async with conn.transaction():
            return await repo.insert_events(conn, [a.event for a in accepted], crops, erased_ids)
    except psycopg.Error as err:
        if transient(err):
            raise
        log.warning("ingest_batch_refused", extra={"error": str(err)[:200], "events": len(accepted)})
    inserted: set[UUID] = set()
    for item in accepted:
        try:
            async with conn.transaction():
                inserted |= await repo.insert_events(conn, [item.event], crops, erased_ids)
        except psycopg.Error as err:
            if transient(err):
                raise
            event = item.event
            certain = refused_for_good(err)  # PostgreSQL refused its values: tell the edge
            origin, event_id = ((event.site, event.edge), str(event.id)) if certain else (None, None)
            result.dead.append(Rejected(item.message, MALFORMED, str(err)[:500], origin, event_id))
    return inserted
