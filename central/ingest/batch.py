"""Storing one batch of checked events: crops first (object store), then one transaction.

`store_crops` puts the crops of events that are new and whose person is not erased, in parallel threads,
before the commit (so a committed row never names a missing crop). `commit` then writes, in one
transaction: the dead letters, the events (idempotent on the event id), tombstones for events naming an
erased person (row kept with `erased_at` set, no crop; a crop stored meanwhile is queued in
`pending_deletions`). The people named are locked FOR SHARE first, so an erase (which locks the person
FOR UPDATE) runs wholly before or wholly after the batch.

The events travel as one JSON parameter (msgspec encodes the whole batch in C) that PostgreSQL expands
with `json_to_recordset`: no per-value adaptation in Python. The `events_claim_id` trigger
(0003_events.sql) skips ids stored before; `RETURNING id` names the rows inserted now.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import anyio.to_thread
import msgspec
import psycopg
from psycopg import AsyncConnection

from central.ingest.validate import MALFORMED, Accepted, IngestEvent, Rejected
from central.storage import ObjectStore, crop_key

log = logging.getLogger("central.ingest")
DEAD_LETTER_MAX_BYTES = 64 * 1024
JPEG_MAGIC = b"\xff\xd8\xff"
CROP_THREADS = 8

_INSERT = """
INSERT INTO events (id, ts, received_at, site_id, edge_id, camera, seq, track_id, kind, person_id, score,
                    threshold, quality, bbox, model_id, gallery_id, gallery_version, first_seen, crop_key,
                    erased_at)
SELECT u.id, u.ts, now(), u.site, u.edge, u.camera, u.seq, u.track_id, u.kind, u.person_id, u.score,
       u.threshold, u.quality, u.bbox, u.model, u.gallery, u.gallery_version, u.first_seen,
       %(crops)s::jsonb ->> u.id::text,
       CASE WHEN u.person_id = ANY(%(erased)s::uuid[]) THEN now() END
  FROM json_to_recordset(%(rows)s::json)
    AS u(id uuid, ts timestamptz, site text, edge text, camera text, seq bigint, track_id bigint, kind text,
         person_id uuid, score real, threshold real, quality real, bbox real[], model text, gallery text,
         gallery_version integer, first_seen timestamptz)
 ORDER BY u.id  -- batches committing at once claim ids in one order: they wait, never deadlock
RETURNING id
"""
_json = msgspec.json.Encoder()


@dataclass(slots=True)
class Committed:
    """What a committed batch stored: `rows` inserted now (not duplicates), `erased` ids stored as
    tombstones, `crops` event id -> crop key of the rows stored with a crop, `dead` every dead letter
    written (including events PostgreSQL refused one by one)."""

    rows: list[IngestEvent] = field(default_factory=list)
    erased: set[UUID] = field(default_factory=set)
    crops: dict[UUID, str] = field(default_factory=dict)
    dead: list[Rejected] = field(default_factory=list)


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
    stored = await _existing_ids(conn, list(wanted))
    erased = await _erased_people(conn, list(people.values()))
    todo = {i: v for i, v in wanted.items() if i not in stored and people[i] not in erased}
    limiter = anyio.CapacityLimiter(CROP_THREADS)

    async def put(key: str, data: bytes) -> None:
        await anyio.to_thread.run_sync(store.put, key, data, "image/jpeg", limiter=limiter)

    await asyncio.gather(*(put(key, data) for key, data in todo.values()))
    return {event_id: key for event_id, (key, _) in todo.items()}


async def commit(
    conn: AsyncConnection[Any],
    accepted: Sequence[Accepted],
    crops: dict[UUID, str],
    rejected: Sequence[Rejected],
) -> Committed:
    """One transaction (the caller's `pool.connection()` block): dead letters, events, tombstones."""
    result = Committed(dead=list(rejected))
    people = sorted({i.event.person_id for i in accepted if i.event.person_id is not None})
    erased = await _erased_people(conn, people, lock=True)
    if erased and crops:
        for item in accepted:
            key = crops.get(item.event.id)
            if key is not None and item.event.person_id in erased:  # stored before the erase committed
                del crops[item.event.id]
                await _queue_deletion(conn, key, item.event.person_id)
    inserted = await _insert(conn, accepted, crops, erased, result)
    result.rows = [item.event for item in accepted if item.event.id in inserted]
    if erased:
        result.erased = {e.id for e in result.rows if e.person_id in erased}
    result.crops = {i: k for i, k in crops.items() if i in inserted}
    await write_dead_letters(conn, result.dead)
    return result


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
    crop_json = _json.encode({str(i): k for i, k in crops.items()})
    erased_ids = [p for p in erased if p is not None]
    try:
        async with conn.transaction():
            return await _insert_rows(conn, [a.event for a in accepted], crop_json, erased_ids)
    except (psycopg.DataError, psycopg.IntegrityError) as err:
        log.warning("ingest_batch_refused", extra={"error": str(err)[:200], "events": len(accepted)})
    inserted: set[UUID] = set()
    for item in accepted:
        try:
            async with conn.transaction():
                inserted |= await _insert_rows(conn, [item.event], crop_json, erased_ids)
        except (psycopg.DataError, psycopg.IntegrityError) as err:
            result.dead.append(Rejected(item.message, MALFORMED, str(err)[:500]))
    return inserted


async def _insert_rows(
    conn: AsyncConnection[Any], events: list[IngestEvent], crop_json: bytes, erased: list[UUID]
) -> set[UUID]:
    rows = [msgspec.structs.replace(e, crop_jpeg=None) if e.crop_jpeg is not None else e for e in events]
    params = {"rows": _json.encode(rows).decode(), "crops": crop_json.decode(), "erased": erased}
    cur = await conn.execute(_INSERT, params)
    return {row[0] for row in await cur.fetchall()}


async def write_dead_letters(conn: AsyncConnection[Any], dead: Sequence[Rejected]) -> None:
    """One row per refused message: topic, payload (first 64 KiB), its full size, the reason."""
    if not dead:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO dead_letters (topic, payload, payload_size, reason) VALUES (%s, %s, %s, %s)",
            [
                (d.message.topic, d.message.payload[:DEAD_LETTER_MAX_BYTES], len(d.message.payload), d.reason)
                for d in dead
            ],
        )


async def _existing_ids(conn: AsyncConnection[Any], ids: list[UUID]) -> set[UUID]:
    cur = await conn.execute("SELECT id FROM event_ids WHERE id = ANY(%s)", (ids,))
    return {row[0] for row in await cur.fetchall()}


async def _erased_people(
    conn: AsyncConnection[Any], people: Sequence[UUID | None], *, lock: bool = False
) -> set[UUID | None]:
    ids = sorted({p for p in people if p is not None})
    if not ids:
        return set()
    suffix = " ORDER BY id FOR SHARE" if lock else ""
    cur = await conn.execute(f"SELECT id, deleted_at FROM people WHERE id = ANY(%s){suffix}", (ids,))
    return {row[0] for row in await cur.fetchall() if row[1] is not None}


async def _queue_deletion(conn: AsyncConnection[Any], key: str, person_id: UUID | None) -> None:
    await conn.execute(
        "INSERT INTO pending_deletions (object_key, person_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (key, person_id),
    )
