"""People in PostgreSQL: create, read, list (keyset pages), update, get-or-create for bulk jobs, their
photos and templates, and the rows an erasure or a template deletion removes.

Every function runs inside the caller's transaction. Erased people (tombstones, `deleted_at` set)
are invisible here: reads and updates treat them as missing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
import psycopg
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from central.errors import Conflict, InvalidInput, NotFound
from central.people.schemas import PersonCreate, PersonRead, PersonUpdate, PhotoRead, TemplateRead
from central.schemas import check_metadata
from common.cursor import CursorError, decode_time_id_cursor, encode_time_id_cursor

_COLUMNS = """
p.id, p.external_id, p.display_name, p.metadata,
coalesce((SELECT array_agg(gp.gallery_id::text ORDER BY gp.gallery_id) FROM gallery_people gp
           WHERE gp.person_id = p.id), '{}'::text[]),
(SELECT count(*) FROM templates t WHERE t.person_id = p.id),
p.created_at, p.updated_at
"""
_GET = f"SELECT {_COLUMNS} FROM people p WHERE p.id = %s AND p.deleted_at IS NULL"
_PAGE = f"SELECT {_COLUMNS} FROM people p WHERE p.deleted_at IS NULL AND (p.created_at, p.id) > (%s, %s)"
"""Live people after a keyset position; list_people adds its filters and `ORDER BY ... LIMIT`."""
_IN_SITES = """
 AND EXISTS (SELECT 1 FROM gallery_people gp JOIN gallery_sites gs ON gs.gallery_id = gp.gallery_id
              WHERE gp.person_id = p.id AND gs.site_id = ANY(%s))"""
"""A person is seen by a site-restricted key when a gallery scoped to one of its sites holds them."""
_PHOTOS = """
SELECT id, status, quality, width, height, created_at, object_key FROM enrollment_photos
 WHERE person_id = %s ORDER BY created_at, id
"""
_TEMPLATES = """
SELECT id, model_id, embedding_size, created_at, source_photo_id FROM templates
 WHERE person_id = %s ORDER BY created_at, id
"""
_ERASE_STATE = "SELECT deleted_at IS NOT NULL FROM people WHERE id = %s FOR UPDATE"
_CROPS = "SELECT crop_key FROM events WHERE person_id = %s AND crop_key IS NOT NULL"
_TOMBSTONE_EVENTS = (
    "UPDATE events SET erased_at = now(), crop_key = NULL WHERE person_id = %s AND erased_at IS NULL"
)
_ERASE_EMBEDDINGS = """
DELETE FROM event_embeddings WHERE person_id = %s
    OR event_id IN (SELECT id FROM events WHERE person_id = %s AND erased_at IS NULL)
"""
_SNAPSHOTS = "DELETE FROM snapshots WHERE gallery_id = ANY(%s) RETURNING object_key"
# Galleries the person left before (their removal wrote deleted_people): older stored snapshots of
# those still hold the person's embeddings. A scan of the change log; erasure is rare.
_LEFT_GALLERIES = "SELECT DISTINCT gallery_id FROM gallery_changes WHERE change->'deleted_people' ? %s"
_TOMBSTONE = """
UPDATE people SET external_id = NULL, display_name = '', metadata = '{}', deleted_at = now() WHERE id = %s
"""
MAX_TEXT = 200
_EPOCH_CURSOR = (datetime.fromisoformat("0001-01-01T00:00:00+00:00"), UUID(int=0))


def _read(row: Sequence[Any]) -> PersonRead:
    pid, external_id, name, metadata, galleries, count, created, updated = row
    return PersonRead(pid, external_id, name, metadata, list(galleries), int(count), created, updated)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_person_text(external_id: str, display_name: str) -> None:
    """The rules of `ExternalId` and `Name` (central/schemas.py) for callers that bypass the API."""
    if not 1 <= len(external_id) <= MAX_TEXT or _CONTROL.search(external_id):
        raise InvalidInput(
            f"external_id {external_id[:40]!r}: use 1-{MAX_TEXT} characters, no control characters"
        )
    if len(display_name) > MAX_TEXT or _CONTROL.search(display_name):
        raise InvalidInput(
            f"display_name {display_name[:40]!r}: up to {MAX_TEXT} characters, no control characters"
        )


def duplicate_external_id(external_id: str) -> Conflict:
    return Conflict(
        f"a person with external_id {external_id!r} already exists; use another id or update that person",
        code="duplicate_external_id",
    )


async def get_person(conn: AsyncConnection[Any], person_id: UUID) -> PersonRead:
    row = await (await conn.execute(_GET, (person_id,))).fetchone()
    if row is None:
        raise NotFound(f"no person {person_id}", code="person_not_found")
    return _read(row)


async def in_sites(conn: AsyncConnection[Any], person_id: UUID, sites: Sequence[str]) -> bool:
    """Whether the person is in a gallery scoped to one of `sites`."""
    sql = "SELECT 1 FROM people p WHERE p.id = %s" + _IN_SITES
    return await (await conn.execute(sql, (person_id, list(sites)))).fetchone() is not None


async def lock_person(conn: AsyncConnection[Any], person_id: UUID, *, share: bool = False) -> None:
    """Lock the person's row for this transaction (FOR SHARE or FOR UPDATE); NotFound if erased or
    missing. Erase takes FOR UPDATE first, so writers that lock first never race it."""
    mode = "SHARE" if share else "UPDATE"
    sql = f"SELECT 1 FROM people WHERE id = %s AND deleted_at IS NULL FOR {mode}"
    if await (await conn.execute(sql, (person_id,))).fetchone() is None:
        raise NotFound(f"no person {person_id}", code="person_not_found")


async def create_person(conn: AsyncConnection[Any], data: PersonCreate) -> UUID:
    """Insert the person (not `data.galleries`: the service adds those); Conflict on a taken external_id."""
    check_metadata(data.metadata)
    try:
        async with conn.transaction():
            cur = await conn.execute(
                "INSERT INTO people (external_id, display_name, metadata) VALUES (%s, %s, %s)"
                " ON CONFLICT (external_id) DO NOTHING RETURNING id",
                (data.external_id, data.display_name, Jsonb(data.metadata)),
            )
            row = await cur.fetchone()
    except psycopg.errors.UniqueViolation as err:
        raise duplicate_external_id(data.external_id) from err
    if row is None:
        raise duplicate_external_id(data.external_id)
    person_id: UUID = row[0]
    return person_id


async def update_person(conn: AsyncConnection[Any], person_id: UUID, data: PersonUpdate) -> list[str]:
    """Apply the fields present in `data`; returns their names. NotFound, Conflict as for create."""
    await lock_person(conn, person_id)
    changes: dict[str, Any] = {
        name: getattr(data, name)
        for name in ("external_id", "display_name", "metadata")
        if getattr(data, name) is not msgspec.UNSET
    }
    if "metadata" in changes:
        changes["metadata"] = Jsonb(check_metadata(changes["metadata"]))
    if not changes:
        return []
    assignments = ", ".join(f"{name} = %s" for name in changes)  # names from the fixed tuple above
    try:
        async with conn.transaction():
            await conn.execute(
                f"UPDATE people SET {assignments} WHERE id = %s", (*changes.values(), person_id)
            )
    except psycopg.errors.UniqueViolation as err:
        raise duplicate_external_id(str(data.external_id)) from err
    return sorted(changes)


def encode_cursor(created_at: datetime, person_id: UUID) -> str:
    return encode_time_id_cursor(created_at, person_id)


def decode_cursor(cursor: str | None) -> tuple[datetime, UUID]:
    """The (created_at, id) after which the page starts; InvalidInput for a cursor we did not issue."""
    if not cursor:
        return _EPOCH_CURSOR
    try:
        return decode_time_id_cursor(cursor)
    except CursorError as err:
        raise InvalidInput("invalid cursor: pass the `next` value of the previous page unchanged") from err


_NAME_MATCHES = " AND (p.display_name ILIKE %s ESCAPE '\\' OR p.external_id ILIKE %s ESCAPE '\\')"
_NAMES = "SELECT id, display_name, external_id FROM people WHERE id = ANY(%s)"


def like_pattern(text: str) -> str:
    """`text` as an ILIKE pattern matching it anywhere (its own % _ and \\ taken literally)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def names(conn: AsyncConnection[Any], ids: Sequence[UUID]) -> dict[UUID, str]:
    """The display name (or external id) of each person of `ids` still known; erased people have none."""
    rows = await (await conn.execute(_NAMES, (list(ids),))).fetchall()
    return {UUID(str(pid)): name or external_id or "" for pid, name, external_id in rows}


async def list_people(
    conn: AsyncConnection[Any],
    limit: int,
    cursor: str | None,
    sites: Sequence[str] = (),
    name: str | None = None,
) -> tuple[list[PersonRead], str | None]:
    """A page of live people; with `sites`, only those in a gallery scoped to one of them; with `name`,
    only those whose name or external id contains it (any case)."""
    after = decode_cursor(cursor)
    sql, params = _PAGE, [*after]
    if sites:
        sql += _IN_SITES
        params.append(list(sites))
    if name:
        sql += _NAME_MATCHES
        params += [like_pattern(name)] * 2
    sql += " ORDER BY p.created_at, p.id LIMIT %s"
    rows = await (await conn.execute(sql, (*params, limit + 1))).fetchall()
    people = [_read(row) for row in rows[:limit]]
    following = None
    if len(rows) > limit:
        last = people[-1]
        following = encode_cursor(last.created_at, last.id)
    return people, following


async def insert_if_absent(conn: AsyncConnection[Any], external_id: str, display_name: str) -> UUID | None:
    """Insert a live person with `external_id`; None (nothing inserted) when one exists already."""
    cur = await conn.execute(
        "INSERT INTO people (external_id, display_name) VALUES (%s, %s)"
        " ON CONFLICT (external_id) DO NOTHING RETURNING id",
        (external_id, display_name),
    )
    row = await cur.fetchone()
    return UUID(str(row[0])) if row is not None else None


async def find_by_external_id(conn: AsyncConnection[Any], external_id: str) -> UUID | None:
    cur = await conn.execute("SELECT id FROM people WHERE external_id = %s", (external_id,))
    found = await cur.fetchone()
    return UUID(str(found[0])) if found is not None else None


async def list_photos(conn: AsyncConnection[Any], person_id: UUID) -> list[tuple[PhotoRead, str]]:
    """The person's stored photos, each with its object key (the `url` is left empty for the caller)."""
    rows = await (await conn.execute(_PHOTOS, (person_id,))).fetchall()
    return [
        (PhotoRead(pid, status, quality, width, height, created, ""), key)
        for pid, status, quality, width, height, created, key in rows
    ]


async def list_templates(conn: AsyncConnection[Any], person_id: UUID) -> list[TemplateRead]:
    rows = await (await conn.execute(_TEMPLATES, (person_id,))).fetchall()
    return [TemplateRead(*row) for row in rows]


# --- erasure and template deletion -------------------------------------------------------------------


async def lock_for_erase(conn: AsyncConnection[Any], person_id: UUID) -> bool | None:
    """Lock the person's row FOR UPDATE: whether they were erased already; None for no such id."""
    row = await (await conn.execute(_ERASE_STATE, (person_id,))).fetchone()
    return None if row is None else bool(row[0])


async def galleries_left(conn: AsyncConnection[Any], person_id: UUID) -> list[str]:
    """Galleries whose log removed the person before (their stored snapshots may hold them)."""
    return [r[0] for r in await (await conn.execute(_LEFT_GALLERIES, (str(person_id),))).fetchall()]


async def crop_keys(conn: AsyncConnection[Any], person_id: UUID) -> list[str]:
    return [r[0] for r in await (await conn.execute(_CROPS, (person_id,))).fetchall()]


async def tombstone_events(conn: AsyncConnection[Any], person_id: UUID) -> int:
    """Mark the person's events erased (crop key cleared) and delete their embeddings (those of events
    the edge matched to the person, and of events an operator attributed to them); returns how many."""
    await conn.execute(_ERASE_EMBEDDINGS, (person_id, person_id))
    return (await conn.execute(_TOMBSTONE_EVENTS, (person_id,))).rowcount


async def delete_face_data(conn: AsyncConnection[Any], person_id: UUID) -> tuple[int, int]:
    """Delete the person's templates, enrollment photos, negative examples and gallery memberships;
    (templates, photos)."""
    templates = (await conn.execute("DELETE FROM templates WHERE person_id = %s", (person_id,))).rowcount
    photos = (await conn.execute("DELETE FROM enrollment_photos WHERE person_id = %s", (person_id,))).rowcount
    await conn.execute("DELETE FROM gallery_people WHERE person_id = %s", (person_id,))
    await conn.execute("DELETE FROM person_negatives WHERE person_id = %s", (person_id,))
    return templates, photos


async def delete_snapshots(conn: AsyncConnection[Any], galleries: Sequence[str]) -> list[str]:
    """Delete the stored snapshot rows of `galleries`; returns their object keys."""
    return [r[0] for r in await (await conn.execute(_SNAPSHOTS, (list(galleries),))).fetchall()]


async def tombstone(conn: AsyncConnection[Any], person_id: UUID) -> None:
    """Clear the person's personal fields and mark the row erased."""
    await conn.execute(_TOMBSTONE, (person_id,))


async def delete_template(
    conn: AsyncConnection[Any], person_id: UUID, template_id: UUID
) -> tuple[bool, UUID | None]:
    """Delete the person's template: (whether it existed, its source photo id)."""
    cur = await conn.execute(
        "DELETE FROM templates WHERE id = %s AND person_id = %s RETURNING source_photo_id",
        (template_id, person_id),
    )
    row = await cur.fetchone()
    return (False, None) if row is None else (True, row[0])


async def drop_unused_photo(conn: AsyncConnection[Any], photo_id: UUID | None) -> str | None:
    """Delete the photo row when no template came from it; its object key, or None."""
    if photo_id is None:
        return None
    cur = await conn.execute(
        "DELETE FROM enrollment_photos ep WHERE ep.id = %s"
        " AND NOT EXISTS (SELECT 1 FROM templates t WHERE t.source_photo_id = ep.id) RETURNING object_key",
        (photo_id,),
    )
    row = await cur.fetchone()
    return str(row[0]) if row else None
