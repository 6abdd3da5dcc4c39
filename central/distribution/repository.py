"""Distribution's SQL: the erase-command outbox, galleries' unpublished versions and their deltas'
templates, the per-gallery distribution locks, stored snapshots to announce or prune, and the edges
that are behind (the resync check). Every function runs in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection

CHANNEL = "facegate_distribution"
"""Notified by triggers on `gallery_changes` and `distribution_commands` (0012_distribution.sql)."""
LOCK_CLASS = 0x66670001
"""First key of the per-gallery advisory locks (the second is hashtext(gallery id))."""
RESYNC_LOCK = (0x66670002, 0)

_QUEUE_ERASE = """
INSERT INTO distribution_commands (action, person_id, sites)
SELECT 'erase_person', %s, array_agg(DISTINCT site_id::text ORDER BY site_id::text)
  FROM gallery_sites WHERE gallery_id = ANY(%s)
HAVING count(*) > 0
"""
_PENDING_COMMANDS = """
SELECT id, action, person_id::text, sites, crop_policy FROM distribution_commands
 ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
"""
_EDGES = "SELECT site_id::text, id::text FROM edges WHERE site_id = ANY(%s) ORDER BY site_id, id"
_COMMAND_DONE = "DELETE FROM distribution_commands WHERE id = %s"
_GALLERY = "SELECT id::text, model_id, current_version, published_version FROM galleries WHERE id = %s"
_CHANGES = """
SELECT version, change, created_at FROM gallery_changes
 WHERE gallery_id = %s AND version > %s AND version <= %s ORDER BY version LIMIT %s
"""
_TEMPLATES = """
SELECT id::text, person_id::text, embedding FROM templates WHERE id = ANY(%s::uuid[]) AND model_id = %s
"""
_NEGATIVES = """
SELECT id::text, person_id::text, embedding FROM person_negatives WHERE id = ANY(%s::uuid[]) AND model_id = %s
"""
_NEWEST_SNAPSHOT = """
SELECT version, object_key, sha256::text, template_count, created_at FROM snapshots
 WHERE gallery_id = %s AND version <= %s ORDER BY version DESC LIMIT 1
"""
_UNPUBLISHED = "SELECT id::text FROM galleries WHERE published_version <> current_version ORDER BY id"
_ADVANCE = "UPDATE galleries SET published_version = %s WHERE id = %s"
_WITHOUT_SNAPSHOT = """
SELECT g.id::text FROM galleries g
 WHERE g.published_version > 0
   AND NOT EXISTS (SELECT 1 FROM snapshots s WHERE s.gallery_id = g.id AND s.version = g.published_version)
 ORDER BY g.id
"""
_PRUNE = """
DELETE FROM snapshots WHERE gallery_id = %(g)s AND version < (
    SELECT min(version) FROM (SELECT version FROM snapshots WHERE gallery_id = %(g)s
                               ORDER BY version DESC LIMIT %(keep)s) newest)
RETURNING object_key
"""
_DROP = "DELETE FROM snapshots WHERE gallery_id = %s AND version = %s"
_DELETIONS_AFTER = """
SELECT EXISTS (
    SELECT 1 FROM gallery_changes WHERE gallery_id = %s AND version > %s
       AND (jsonb_array_length(COALESCE(change->'deleted_people', '[]')) > 0
            OR jsonb_array_length(COALESCE(change->'deleted_templates', '[]')) > 0))
"""
_BEHIND = """
WITH reported AS (
    SELECT e.site_id, e.id AS edge_id, v.key AS gallery_id, (v.value #>> '{}')::numeric::integer AS version
      FROM edges e, jsonb_each(e.gallery_versions) v
     WHERE e.status = 'online' AND jsonb_typeof(v.value) = 'number'
       AND NOT EXISTS (SELECT 1 FROM edge_resyncs r
                        WHERE r.site_id = e.site_id AND r.edge_id = e.id
                          AND r.sent_at > now() - make_interval(secs => %(interval)s)))
SELECT r.site_id::text, r.edge_id::text, r.gallery_id, r.version, g.published_version
  FROM reported r
  JOIN gallery_sites gs ON gs.site_id = r.site_id AND gs.gallery_id = r.gallery_id
  JOIN galleries g ON g.id = r.gallery_id
  JOIN gallery_changes c ON c.gallery_id = g.id AND c.version = r.version + 1
 WHERE r.version >= 0 AND r.version < g.published_version
   AND c.created_at < now() - make_interval(secs => %(grace)s)
 ORDER BY 1, 2, 3
"""
_RESYNC_SENT = """
INSERT INTO edge_resyncs (site_id, edge_id, sent_at) VALUES (%s, %s, now())
ON CONFLICT (site_id, edge_id) DO UPDATE SET sent_at = EXCLUDED.sent_at
"""


async def listen(conn: AsyncConnection[Any]) -> None:
    """Receive the notifications of CHANNEL on `conn` (an autocommit connection of its own)."""
    await conn.execute("LISTEN facegate_distribution")  # CHANNEL


# --- the erase-command outbox ------------------------------------------------------------------------


async def queue_erase(conn: AsyncConnection[Any], person_id: UUID, galleries: Sequence[str]) -> None:
    """One `erase_person` row naming the sites of `galleries` (none when they have no sites)."""
    await conn.execute(_QUEUE_ERASE, (person_id, list(galleries)))


async def pending_commands(
    conn: AsyncConnection[Any], limit: int
) -> list[tuple[int, Any, str | None, list[str], Any]]:
    """(id, action, person id, sites, crop policy) of up to `limit` queued commands no other replica
    holds, locked. The action is a `common.messages.Command` action as the row holds it (`erase_person`
    with a person, `reload_config` with a crop policy)."""
    rows = await (await conn.execute(_PENDING_COMMANDS, (limit,))).fetchall()
    return [(int(i), a, p, list(s), c) for i, a, p, s, c in rows]


async def edges_of(conn: AsyncConnection[Any], sites: Sequence[str]) -> list[tuple[str, str]]:
    """(site, edge) of every edge of `sites`, in order."""
    return [(s, e) for s, e in await (await conn.execute(_EDGES, (list(sites),))).fetchall()]


async def command_done(conn: AsyncConnection[Any], command_id: int) -> None:
    await conn.execute(_COMMAND_DONE, (command_id,))


# --- galleries and their versions --------------------------------------------------------------------


async def lock_gallery(conn: AsyncConnection[Any], gallery_id: str) -> bool:
    """Take the gallery's distribution lock for this transaction; False when another replica holds it."""
    cur = await conn.execute("SELECT pg_try_advisory_xact_lock(%s, hashtext(%s))", (LOCK_CLASS, gallery_id))
    row = await cur.fetchone()
    return bool(row and row[0])


async def gallery(conn: AsyncConnection[Any], gallery_id: str) -> tuple[str, str, int, int] | None:
    """(id, model id, current version, published version), or None when the gallery is gone."""
    row = await (await conn.execute(_GALLERY, (gallery_id,))).fetchone()
    return (str(row[0]), str(row[1]), int(row[2]), int(row[3])) if row else None


async def unpublished_galleries(conn: AsyncConnection[Any]) -> list[str]:
    return [row[0] for row in await (await conn.execute(_UNPUBLISHED)).fetchall()]


async def advance(conn: AsyncConnection[Any], gallery_id: str, version: int) -> None:
    """Record `version` as the gallery's published version."""
    await conn.execute(_ADVANCE, (version, gallery_id))


async def changes(
    conn: AsyncConnection[Any], gallery_id: str, after: int, upto: int, limit: int
) -> list[tuple[int, dict[str, Any], datetime]]:
    """(version, change body, created at) of versions after+1 .. upto, at most `limit`, in order."""
    rows = await (await conn.execute(_CHANGES, (gallery_id, after, upto, limit))).fetchall()
    return [(int(v), body, created) for v, body, created in rows]


async def templates(
    conn: AsyncConnection[Any], ids: Sequence[str], model_id: str
) -> dict[str, tuple[str, bytes]]:
    """{template id: (person id, embedding)} of the templates of `ids` of `model_id` that still exist."""
    cur = await conn.execute(_TEMPLATES, (list(ids), model_id))
    return {tid: (pid, bytes(emb)) for tid, pid, emb in await cur.fetchall()}


async def negatives(
    conn: AsyncConnection[Any], ids: Sequence[str], model_id: str
) -> dict[str, tuple[str, bytes]]:
    """{negative id: (person id, embedding)} of the negatives of `ids` of `model_id` that still exist."""
    cur = await conn.execute(_NEGATIVES, (list(ids), model_id))
    return {nid: (pid, bytes(emb)) for nid, pid, emb in await cur.fetchall()}


# --- stored snapshots --------------------------------------------------------------------------------


async def newest_snapshot(
    conn: AsyncConnection[Any], gallery_id: str, upto: int
) -> tuple[int, str, str, int, datetime] | None:
    """(version, object key, sha256, template count, created at) of the newest snapshot <= `upto`."""
    row = await (await conn.execute(_NEWEST_SNAPSHOT, (gallery_id, upto))).fetchone()
    return (int(row[0]), str(row[1]), str(row[2]), int(row[3]), row[4]) if row else None


async def galleries_without_current_snapshot(conn: AsyncConnection[Any]) -> list[str]:
    """Galleries whose published version (above 0) has no stored snapshot."""
    return [row[0] for row in await (await conn.execute(_WITHOUT_SNAPSHOT)).fetchall()]


async def prune_snapshots(conn: AsyncConnection[Any], gallery_id: str, keep: int) -> list[str]:
    """Delete all but the newest `keep` snapshot rows of the gallery; returns their object keys."""
    return [row[0] for row in await (await conn.execute(_PRUNE, {"g": gallery_id, "keep": keep})).fetchall()]


async def share_lock_gallery(conn: AsyncConnection[Any], gallery_id: str) -> None:
    """Wait for a transaction changing the gallery (an erasure in flight) to commit, and hold it off."""
    await conn.execute("SELECT 1 FROM galleries WHERE id = %s FOR SHARE", (gallery_id,))


async def deletions_after(conn: AsyncConnection[Any], gallery_id: str, version: int) -> bool:
    """Whether a version after `version` deletes templates or people."""
    row = await (await conn.execute(_DELETIONS_AFTER, (gallery_id, version))).fetchone()
    return bool(row and row[0])


async def drop_snapshot(conn: AsyncConnection[Any], gallery_id: str, version: int) -> None:
    await conn.execute(_DROP, (gallery_id, version))


# --- the resync check --------------------------------------------------------------------------------


async def lock_resync(conn: AsyncConnection[Any]) -> bool:
    """Take the resync check's lock for this transaction; False when another replica runs it."""
    row = await (await conn.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", RESYNC_LOCK)).fetchone()
    return bool(row and row[0])


async def edges_behind(
    conn: AsyncConnection[Any], interval_s: float, grace_s: float
) -> list[tuple[str, str, str, int, int]]:
    """(site, edge, gallery, reported version, published version) of every online edge that is behind a
    gallery of its site for longer than `grace_s` and got no resync within `interval_s`."""
    cur = await conn.execute(_BEHIND, {"interval": interval_s, "grace": grace_s})
    return [(s, e, g, int(v), int(p)) for s, e, g, v, p in await cur.fetchall()]


async def resync_sent(conn: AsyncConnection[Any], site: str, edge: str) -> None:
    await conn.execute(_RESYNC_SENT, (site, edge))
