"""Galleries, their sites, members, version log and stored snapshots in PostgreSQL. Every function runs
in the caller's transaction.

Membership changes lock the person's row (`FOR UPDATE`) before touching the gallery: enrollment inserts
a template under a key-share lock on the same row, so a new template and a new membership never miss
each other (the template is either in the membership's upserts or logged by `record_person_change`).
Lock order is person, then gallery, as in enrollment, so the two cannot deadlock.

Versions come from the `append_gallery_change` SQL function, which bumps `galleries.current_version`
under its row lock, so concurrent writers queue and no version is skipped or repeated. Callers append
on the connection of the transaction that makes the change itself (enrollment, template deletion,
person deletion, membership or scope change): both commit or neither does. The bodies are built by
central/galleries/changes.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from central.errors import Conflict, InvalidInput, NotFound
from central.galleries.changes import change_body
from central.galleries.schemas import ChangeRead, MemberRead, SnapshotRead

_NIL = UUID(int=0)

_GALLERY = "SELECT id, name, model_id, current_version, created_at FROM galleries WHERE id = %s"
_SITES = "SELECT site_id::text FROM gallery_sites WHERE gallery_id = %s ORDER BY site_id"
_LIST = """
SELECT g.id, g.name, g.model_id, g.current_version, g.created_at,
       ARRAY(SELECT s.site_id::text FROM gallery_sites s WHERE s.gallery_id = g.id ORDER BY s.site_id)
  FROM galleries g
 WHERE g.id > %(after)s
   AND (%(all)s OR EXISTS (SELECT 1 FROM gallery_sites s
                            WHERE s.gallery_id = g.id AND s.site_id = ANY(%(sites)s::text[])))
 ORDER BY g.id LIMIT %(limit)s
"""
_COUNTS = """
SELECT (SELECT count(*) FROM gallery_people WHERE gallery_id = %(g)s),
       (SELECT count(*) FROM gallery_people gp JOIN templates t
            ON t.model_id = %(m)s AND t.person_id = gp.person_id WHERE gp.gallery_id = %(g)s)
"""
_MEMBERS = """
SELECT gp.person_id, p.external_id, p.display_name, gp.added_at
  FROM gallery_people gp JOIN people p ON p.id = gp.person_id
 WHERE gp.gallery_id = %s AND gp.person_id > %s ORDER BY gp.person_id LIMIT %s
"""
_CHANGES = """
SELECT version, created_at,
       COALESCE(jsonb_array_length(change -> 'upserts'), 0),
       COALESCE(jsonb_array_length(change -> 'deleted_templates'), 0),
       COALESCE(jsonb_array_length(change -> 'deleted_people'), 0),
       change -> 'sites'
  FROM gallery_changes WHERE gallery_id = %s AND version > %s ORDER BY version LIMIT %s
"""
_PERSON_GALLERIES = """
SELECT g.id, g.model_id FROM gallery_people gp JOIN galleries g ON g.id = gp.gallery_id
 WHERE gp.person_id = %s ORDER BY g.id FOR UPDATE OF g
"""
_TEMPLATE_MODELS = "SELECT id, model_id FROM templates WHERE id = ANY(%s)"
_STORED = """
SELECT gallery_id::text, version, sha256::text, object_key, template_count, size_bytes, created_at
  FROM snapshots WHERE gallery_id = %s AND version = %s
"""
_RECORD = """
INSERT INTO snapshots (gallery_id, version, object_key, sha256, size_bytes, template_count)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (gallery_id, version) DO UPDATE
   SET object_key = EXCLUDED.object_key, sha256 = EXCLUDED.sha256, size_bytes = EXCLUDED.size_bytes,
       template_count = EXCLUDED.template_count, created_at = now()
RETURNING created_at
"""
_VERSION_TIME = """
SELECT COALESCE((SELECT created_at FROM gallery_changes WHERE gallery_id = %(g)s AND version = %(v)s),
                (SELECT created_at FROM galleries WHERE id = %(g)s))
"""
_LOG = "SELECT change FROM gallery_changes WHERE gallery_id = %s AND version <= %s ORDER BY version"
_OWNERS = "SELECT id::text, person_id::text FROM templates WHERE id = ANY(%s::uuid[])"
_TEMPLATES = """
SELECT id::text, person_id::text, embedding_size, embedding FROM templates
 WHERE id = ANY(%s::uuid[]) AND model_id = %s ORDER BY id
"""


@dataclass(frozen=True, slots=True)
class Gallery:
    id: str
    name: str
    model_id: str
    current_version: int
    created_at: datetime
    sites: tuple[str, ...]


async def get_gallery(conn: AsyncConnection[Any], gallery_id: str, *, lock: bool = False) -> Gallery:
    """The gallery and its sites; NotFound when there is none. `lock` holds its row until commit."""
    row = await (await conn.execute(_GALLERY + (" FOR UPDATE" if lock else ""), (gallery_id,))).fetchone()
    if row is None:
        raise NotFound(f"no gallery {gallery_id!r}; list them with GET /api/v1/galleries")
    sites = [r[0] for r in await (await conn.execute(_SITES, (gallery_id,))).fetchall()]
    return _gallery(row, sites)


def _gallery(row: Sequence[Any], sites: Sequence[str]) -> Gallery:
    gallery_id, name, model_id, version, created_at = row
    return Gallery(gallery_id, name, model_id, version, created_at, tuple(sites))


async def list_galleries(
    conn: AsyncConnection[Any], after: str, limit: int, sites: Sequence[str] | None
) -> list[Gallery]:
    """Galleries after id `after`, by id; `sites=None` means all, else those scoped to any of `sites`."""
    params = {"after": after, "limit": limit, "all": sites is None, "sites": list(sites or ())}
    rows = await (await conn.execute(_LIST, params)).fetchall()
    return [_gallery(row[:5], row[5]) for row in rows]


async def check_sites(conn: AsyncConnection[Any], sites: Sequence[str]) -> None:
    """InvalidInput (422) naming the sites that do not exist."""
    rows = await (
        await conn.execute("SELECT id::text FROM sites WHERE id = ANY(%s)", (list(sites),))
    ).fetchall()
    unknown = set(sites) - {row[0] for row in rows}
    if unknown:
        raise InvalidInput(f"unknown sites {sorted(unknown)}: create them first (POST /api/v1/sites)")


async def create_gallery(
    conn: AsyncConnection[Any], gallery_id: str, name: str, model_id: str, sites: Sequence[str]
) -> Gallery:
    await check_sites(conn, sites)
    cur = await conn.execute(
        "INSERT INTO galleries (id, name, model_id) VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING"
        " RETURNING id",
        (gallery_id, name, model_id),
    )
    if await cur.fetchone() is None:
        raise Conflict(f"gallery {gallery_id!r} exists already; choose another id or PATCH it")
    await _insert_sites(conn, gallery_id, sites)
    return await get_gallery(conn, gallery_id)


async def rename_gallery(conn: AsyncConnection[Any], gallery_id: str, name: str) -> None:
    await conn.execute("UPDATE galleries SET name = %s WHERE id = %s", (name, gallery_id))


async def set_sites(conn: AsyncConnection[Any], gallery: Gallery, sites: Sequence[str]) -> int | None:
    """Replace the gallery's scope and log it as a version; None (no version) when it is the same."""
    if set(sites) == set(gallery.sites):
        return None
    await check_sites(conn, sites)
    await conn.execute(
        "DELETE FROM gallery_sites WHERE gallery_id = %s AND NOT (site_id = ANY(%s::text[]))",
        (gallery.id, list(sites)),
    )
    await _insert_sites(conn, gallery.id, sites)
    return await append_change(conn, gallery.id, change_body(sites=list(set(sites))))


async def _insert_sites(conn: AsyncConnection[Any], gallery_id: str, sites: Sequence[str]) -> None:
    await conn.execute(
        "INSERT INTO gallery_sites (gallery_id, site_id) SELECT %s, unnest(%s::text[])"
        " ON CONFLICT DO NOTHING",
        (gallery_id, list(sites)),
    )


async def delete_gallery(conn: AsyncConnection[Any], gallery_id: str) -> None:
    """Delete the gallery; its sites, members, change log and snapshot rows go with it (cascade)."""
    await conn.execute("DELETE FROM galleries WHERE id = %s", (gallery_id,))


async def counts(conn: AsyncConnection[Any], gallery: Gallery) -> tuple[int, int]:
    """(members, templates of the members made with the gallery's model)."""
    row = await (await conn.execute(_COUNTS, {"g": gallery.id, "m": gallery.model_id})).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def add_member(conn: AsyncConnection[Any], gallery: Gallery, person_id: UUID) -> int | None:
    """Add the person and append one version upserting their templates of the gallery's model.

    Returns the new version, or None when the person was a member already (nothing appended)."""
    await _lock_person(conn, person_id, alive=True)
    cur = await conn.execute(
        "INSERT INTO gallery_people (gallery_id, person_id) VALUES (%s, %s) ON CONFLICT DO NOTHING"
        " RETURNING person_id",
        (gallery.id, person_id),
    )
    if await cur.fetchone() is None:
        return None
    cur = await conn.execute(
        "SELECT id FROM templates WHERE model_id = %s AND person_id = %s ORDER BY id",
        (gallery.model_id, person_id),
    )
    templates = [row[0] for row in await cur.fetchall()]
    body = change_body(templates, owners=dict.fromkeys(templates, person_id))
    return await append_change(conn, gallery.id, body)


async def remove_member(conn: AsyncConnection[Any], gallery: Gallery, person_id: UUID) -> int:
    """Remove the person and append `deleted_people: [person]`; NotFound if they were not a member."""
    await _lock_person(conn, person_id, alive=False)
    cur = await conn.execute(
        "DELETE FROM gallery_people WHERE gallery_id = %s AND person_id = %s RETURNING person_id",
        (gallery.id, person_id),
    )
    if await cur.fetchone() is None:
        raise NotFound(f"person {person_id} is not a member of gallery {gallery.id!r}")
    return await append_change(conn, gallery.id, change_body(deleted_people=[person_id]))


async def _lock_person(conn: AsyncConnection[Any], person_id: UUID, *, alive: bool) -> None:
    cur = await conn.execute("SELECT deleted_at FROM people WHERE id = %s FOR UPDATE", (person_id,))
    row = await cur.fetchone()
    if row is None or (alive and row[0] is not None):
        raise NotFound(f"no person {person_id}; create people with POST /api/v1/people")


async def list_members(
    conn: AsyncConnection[Any], gallery_id: str, after: UUID | None, limit: int
) -> list[MemberRead]:
    rows = await (await conn.execute(_MEMBERS, (gallery_id, after or _NIL, limit))).fetchall()
    return [MemberRead(*row) for row in rows]


async def list_changes(
    conn: AsyncConnection[Any], gallery_id: str, after: int, limit: int
) -> list[ChangeRead]:
    rows = await (await conn.execute(_CHANGES, (gallery_id, after, limit))).fetchall()
    return [ChangeRead(*row) for row in rows]


async def unknown_galleries(conn: AsyncConnection[Any], galleries: Sequence[str]) -> list[str]:
    """The ids of `galleries` that do not exist, sorted."""
    cur = await conn.execute("SELECT id FROM galleries WHERE id = ANY(%s)", (list(galleries),))
    return sorted(set(galleries) - {row[0] for row in await cur.fetchall()})


# --- the version log -------------------------------------------------------------------------------


async def append_change(conn: AsyncConnection[Any], gallery_id: str, body: dict[str, Any]) -> int:
    """Append `body` as the gallery's next version and return that version."""
    cur = await conn.execute("SELECT append_gallery_change(%s, %s)", (gallery_id, Jsonb(body)))
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def record_person_change(
    conn: AsyncConnection[Any],
    person_id: UUID,
    *,
    upserts: Sequence[UUID] = (),
    deleted_templates: Sequence[UUID] = (),
    deleted_person: bool = False,
    negatives: Sequence[UUID] = (),
    deleted_negatives: Sequence[UUID] = (),
    negatives_model: str | None = None,
) -> dict[str, int]:
    """Append one change to every gallery that holds the person; returns {gallery id: new version}.

    `negatives` (of model `negatives_model`) go to the galleries of that model; deleted negatives to
    every gallery of the person.

    Upserted templates go only to galleries of the same model id (a template is never compared with
    another model's); call this after inserting them. Deleted template ids and a deleted person go to
    every gallery of the person. Galleries with nothing to change get no version.
    """
    galleries = await (await conn.execute(_PERSON_GALLERIES, (person_id,))).fetchall()
    if not galleries:
        return {}
    models: dict[UUID, str] = {}
    if upserts:
        models = dict(await (await conn.execute(_TEMPLATE_MODELS, (list(upserts),))).fetchall())
    versions: dict[str, int] = {}
    for gallery_id, model_id in galleries:
        mine = [t for t in upserts if models.get(t) == model_id]
        added = list(negatives) if negatives_model == model_id else []
        if not (mine or deleted_templates or deleted_person or added or deleted_negatives):
            continue
        body = change_body(
            mine,
            deleted_templates,
            [person_id] if deleted_person else [],
            owners=dict.fromkeys(mine, person_id),
            negatives=added,
            deleted_negatives=deleted_negatives,
        )
        versions[gallery_id] = await append_change(conn, gallery_id, body)
    return versions


# --- stored snapshots ------------------------------------------------------------------------------


async def stored_snapshot(conn: AsyncConnection[Any], gallery: Gallery, version: int) -> SnapshotRead | None:
    row = await (await conn.execute(_STORED, (gallery.id, version))).fetchone()
    if row is None:
        return None
    gid, ver, sha, key, count, size, created = row
    return SnapshotRead(gid, ver, sha, key, count, size, gallery.model_id, created)


async def record_snapshot(  # noqa: PLR0917  # one argument per column
    conn: AsyncConnection[Any], gallery_id: str, version: int, key: str, sha256: str, size: int, count: int
) -> datetime:
    """Record (or replace) the snapshot row; returns its created_at."""
    row = await (await conn.execute(_RECORD, (gallery_id, version, key, sha256, size, count))).fetchone()
    assert row is not None
    created: datetime = row[0]
    return created


async def begin_snapshot_read(conn: AsyncConnection[Any]) -> None:
    """Make the caller's transaction a consistent read-only view (first statement of the transaction)."""
    await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")


async def version_time(conn: AsyncConnection[Any], gallery_id: str, version: int) -> datetime | None:
    """When `version` was appended (the gallery's creation for version 0); None if the gallery is gone."""
    row = await (await conn.execute(_VERSION_TIME, {"g": gallery_id, "v": version})).fetchone()
    return row[0] if row else None


async def change_bodies(conn: AsyncConnection[Any], gallery_id: str, version: int) -> list[dict[str, Any]]:
    """The change bodies of versions 1..`version`, in order."""
    return [row[0] for row in await (await conn.execute(_LOG, (gallery_id, version))).fetchall()]


async def template_owners(conn: AsyncConnection[Any], templates: Sequence[str]) -> dict[str, str]:
    """{template id: person id} of the templates that still exist."""
    return dict(await (await conn.execute(_OWNERS, (list(templates),))).fetchall())


async def snapshot_templates(
    conn: AsyncConnection[Any], templates: Sequence[str], model_id: str
) -> list[tuple[str, str, int, bytes]]:
    """(template id, person id, embedding size, embedding) of the templates of `model_id`, by id."""
    rows = await (await conn.execute(_TEMPLATES, (list(templates), model_id))).fetchall()
    return [(t, p, int(size), bytes(e)) for t, p, size, e in rows]


async def snapshot_negatives(
    conn: AsyncConnection[Any], people: Sequence[str], model_id: str
) -> list[tuple[str, str, bytes]]:
    """(negative id, person id, embedding) of the negatives of `people` of `model_id`, by id."""
    cur = await conn.execute(
        "SELECT id::text, person_id::text, embedding FROM person_negatives"
        " WHERE person_id = ANY(%s::uuid[]) AND model_id = %s ORDER BY id",
        (list(people), model_id),
    )
    return [(n, p, bytes(e)) for n, p, e in await cur.fetchall()]


async def embedding_size_of(conn: AsyncConnection[Any], model_id: str) -> int | None:
    """The embedding size of any stored template of `model_id`, None when there is none."""
    row = await (
        await conn.execute("SELECT embedding_size FROM templates WHERE model_id = %s LIMIT 1", (model_id,))
    ).fetchone()
    return int(row[0]) if row is not None else None
