"""Ingest's SQL: events of a batch (idempotent on the event id), dead letters, the checks a batch needs
(ids stored before, erased people, registered edges), and the `edges` rows fleet state keeps.

Every function runs in the caller's transaction. The events travel as one JSON parameter (msgspec
encodes the whole batch in C) that PostgreSQL expands with `json_to_recordset`: no per-value adaptation
in Python. The `events_claim_id` trigger (0003_events.sql) skips ids stored before; `RETURNING id`
names the rows inserted now.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import msgspec
from psycopg import AsyncConnection

from central.ingest.validate import IngestEvent, Rejected
from common.topics import TopicError, parse_topic

DEAD_LETTER_MAX_BYTES = 64 * 1024

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
_EMBEDDINGS = """
INSERT INTO event_embeddings (event_id, ts, site_id, edge_id, camera, person_id, model_id, embedding)
SELECT u.id, u.ts, u.site, u.edge, u.camera, u.person_id, u.model, u.embedding
  FROM json_to_recordset(%s::json)
    AS u(id uuid, ts timestamptz, site text, edge text, camera text, person_id uuid, model text,
         embedding real[])
ON CONFLICT (event_id) DO NOTHING
"""
_ONLINE = """
UPDATE edges SET status = 'online', last_seen = now(), software_version = %(software)s,
       detector_model = %(detector)s, recognizer_model = %(recognizer)s, gallery_versions = %(galleries)s
 WHERE site_id = %(site)s AND id = %(edge)s
"""
_OFFLINE = "UPDATE edges SET status = 'offline' WHERE site_id = %(site)s AND id = %(edge)s"
_HEARTBEAT = """
UPDATE edges SET status = 'online', last_seen = now(), stats = %(stats)s, stats_at = now(),
       gallery_versions = CASE WHEN %(galleries)s = '{}'::jsonb THEN gallery_versions ELSE %(galleries)s END
 WHERE site_id = %(site)s AND id = %(edge)s
"""
_json = msgspec.json.Encoder()


async def insert_events(
    conn: AsyncConnection[Any], events: list[IngestEvent], crops: dict[UUID, str], erased: list[UUID]
) -> set[UUID]:
    """Insert `events` (their crops' bytes left out) with the crop key of each id in `crops`, as
    tombstones when their person is in `erased`; returns the ids inserted now."""
    rows = [
        msgspec.structs.replace(e, crop_jpeg=None, embedding=None)
        if e.crop_jpeg is not None or e.embedding is not None
        else e
        for e in events
    ]
    params = {
        "rows": _json.encode(rows).decode(),
        "crops": _json.encode({str(i): k for i, k in crops.items()}).decode(),
        "erased": erased,
    }
    cur = await conn.execute(_INSERT, params)
    return {row[0] for row in await cur.fetchall()}


async def insert_embeddings(conn: AsyncConnection[Any], rows: list[dict[str, Any]]) -> None:
    """Store event embeddings (`rows`: id, ts, site, edge, camera, person_id, model, embedding floats)."""
    if rows:
        await conn.execute(_EMBEDDINGS, (_json.encode(rows).decode(),))


async def write_dead_letters(conn: AsyncConnection[Any], dead: Sequence[Rejected]) -> None:
    """One row per refused message: topic, payload (first 64 KiB), its full size, the reason, and the
    edge it came from (its topic's site and edge, for the cap per edge)."""
    if not dead:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO dead_letters (topic, payload, payload_size, reason, site_id, edge_id)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            [
                (
                    d.message.topic,
                    d.message.payload[:DEAD_LETTER_MAX_BYTES],
                    len(d.message.payload),
                    d.reason,
                    *(d.origin or _origin(d.message.topic)),
                )
                for d in dead
            ],
        )


def _origin(topic: str) -> tuple[str | None, str | None]:
    try:
        parsed = parse_topic(topic)
    except TopicError:
        return None, None
    return parsed.site, parsed.edge


async def existing_ids(conn: AsyncConnection[Any], ids: list[UUID]) -> set[UUID]:
    """The ids of `ids` stored before (the `event_ids` ledger)."""
    cur = await conn.execute("SELECT id FROM event_ids WHERE id = ANY(%s)", (ids,))
    return {row[0] for row in await cur.fetchall()}


async def erased_people(
    conn: AsyncConnection[Any], people: Sequence[UUID | None], *, lock: bool = False
) -> set[UUID | None]:
    """The erased ones of `people`; `lock` takes their rows FOR SHARE (in id order) until commit."""
    ids = sorted({p for p in people if p is not None})
    if not ids:
        return set()
    suffix = " ORDER BY id FOR SHARE" if lock else ""
    cur = await conn.execute(f"SELECT id, deleted_at FROM people WHERE id = ANY(%s){suffix}", (ids,))
    return {row[0] for row in await cur.fetchall() if row[1] is not None}


async def queue_deletion(conn: AsyncConnection[Any], key: str, person_id: UUID | None) -> None:
    """Queue a stored crop for deletion (central/cleanup/ deletes it)."""
    await conn.execute(
        "INSERT INTO pending_deletions (object_key, person_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (key, person_id),
    )


async def registered_edges(conn: AsyncConnection[Any]) -> frozenset[tuple[str, str]]:
    """Every registered (site, edge)."""
    cur = await conn.execute("SELECT site_id, id FROM edges")
    return frozenset((str(site), str(edge)) for site, edge in await cur.fetchall())


async def edge_online(conn: AsyncConnection[Any], params: dict[str, Any]) -> int:
    """An online status: status, last seen, versions; returns the rows updated (0: unknown edge)."""
    return (await conn.execute(_ONLINE, params)).rowcount


async def edge_offline(conn: AsyncConnection[Any], params: dict[str, Any]) -> int:
    return (await conn.execute(_OFFLINE, params)).rowcount


async def edge_heartbeat(conn: AsyncConnection[Any], params: dict[str, Any]) -> int:
    """A heartbeat: online, last seen, stats (and gallery versions when it names any)."""
    return (await conn.execute(_HEARTBEAT, params)).rowcount
