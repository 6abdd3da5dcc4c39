"""Storing one batch of checked events: crops first (object store), then one transaction.

`store_crops` puts the crops of events that are new and whose person is not erased, in parallel threads,
before the commit (so a committed row never names a missing crop). `commit` then writes, in one
transaction: the dead letters, the events (idempotent on the event id), tombstones for events naming an
erased person (row kept, no crop; a crop stored meanwhile is queued in `pending_deletions`). The people
named are locked FOR SHARE first, so an erase (which locks the person FOR UPDATE) runs wholly before or
wholly after the batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from uuid import UUID

import anyio.to_thread
import psycopg
from psycopg import AsyncConnection

from central.events.repository import EventRow, insert_events
from central.ingest.validate import MALFORMED, Accepted, Rejected
from central.storage import ObjectStore, crop_key

log = logging.getLogger("central.ingest")
DEAD_LETTER_MAX_BYTES = 64 * 1024
JPEG_MAGIC = b"\xff\xd8\xff"
CROP_THREADS = 8


@dataclass(slots=True)
class Committed:
    """What a committed batch stored: `rows` inserted now (not duplicates), `erased` ids stored as
    tombstones, `dead` every dead letter written (including events PostgreSQL refused one by one)."""

    rows: list[EventRow] = field(default_factory=list)
    erased: set[UUID] = field(default_factory=set)
    dead: list[Rejected] = field(default_factory=list)


async def store_crops(
    conn: AsyncConnection[Any], store: ObjectStore, accepted: Sequence[Accepted], max_bytes: int
) -> dict[UUID, str]:
    """Put the crops of new events whose person is not erased; returns event id -> crop key."""
    wanted: dict[UUID, tuple[str, bytes]] = {}
    for item in accepted:
        jpeg = item.event.crop_jpeg
        if jpeg is None or item.row.id in wanted:
            continue
        if len(jpeg) > max_bytes or not jpeg.startswith(JPEG_MAGIC):
            log.warning("ingest_crop_dropped", extra={"event": str(item.row.id), "bytes": len(jpeg)})
            continue
        wanted[item.row.id] = (crop_key(item.row.id, item.row.ts), jpeg)
    if not wanted:
        return {}
    stored = await _existing_ids(conn, list(wanted))
    erased = await _erased_people(conn, [i.row.person_id for i in accepted if i.row.id in wanted])
    todo = {
        i.row.id: wanted[i.row.id]
        for i in accepted
        if i.row.id in wanted and i.row.id not in stored and i.row.person_id not in erased
    }
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
    people = sorted({i.row.person_id for i in accepted if i.row.person_id is not None})
    erased = await _erased_people(conn, people, lock=True)
    rows: list[EventRow] = []
    for item in accepted:
        key = crops.get(item.row.id)
        if item.row.person_id in erased:
            result.erased.add(item.row.id)
            if key is not None:  # stored before the erase committed: delete it later
                await _queue_deletion(conn, key, item.row.person_id)
            key = None
        rows.append(replace(item.row, crop_key=key))
    inserted = await _insert(conn, rows, accepted, result)
    result.rows = [row for row in rows if row.id in inserted]
    tombstones = [row.id for row in result.rows if row.id in result.erased]
    if tombstones:
        await conn.execute("UPDATE events SET erased_at = now() WHERE id = ANY(%s)", (tombstones,))
    await write_dead_letters(conn, result.dead)
    return result


async def _insert(
    conn: AsyncConnection[Any], rows: list[EventRow], accepted: Sequence[Accepted], result: Committed
) -> set[UUID]:
    """Insert all rows; if PostgreSQL refuses a value, insert one by one and dead-letter the refused."""
    try:
        async with conn.transaction():
            return set(await insert_events(conn, rows))
    except (psycopg.DataError, psycopg.IntegrityError) as err:
        log.warning("ingest_batch_refused", extra={"error": str(err)[:200], "events": len(rows)})
    inserted: set[UUID] = set()
    for row, item in zip(rows, accepted, strict=True):
        try:
            async with conn.transaction():
                inserted.update(await insert_events(conn, [row]))
        except (psycopg.DataError, psycopg.IntegrityError) as err:
            result.dead.append(Rejected(item.message, MALFORMED, str(err)[:500]))
    return inserted


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
