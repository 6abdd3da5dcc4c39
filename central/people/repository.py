"""People in PostgreSQL: create, read, list (keyset pages), update, and get-or-create for bulk jobs.

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

from central import audit
from central.auth.scopes import Principal
from central.errors import Conflict, InvalidInput, NotFound
from central.galleries.repository import add_member, get_gallery
from central.people.schemas import PersonCreate, PersonRead, PersonUpdate
from central.runtime import Runtime
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
_PAGE = f"""
SELECT {_COLUMNS} FROM people p
 WHERE p.deleted_at IS NULL AND (p.created_at, p.id) > (%s, %s)
 ORDER BY p.created_at, p.id LIMIT %s
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


async def lock_person(conn: AsyncConnection[Any], person_id: UUID, *, share: bool = False) -> None:
    """Lock the person's row for this transaction (FOR SHARE or FOR UPDATE); NotFound if erased or
    missing. Erase takes FOR UPDATE first, so writers that lock first never race it."""
    mode = "SHARE" if share else "UPDATE"
    sql = f"SELECT 1 FROM people WHERE id = %s AND deleted_at IS NULL FOR {mode}"
    if await (await conn.execute(sql, (person_id,))).fetchone() is None:
        raise NotFound(f"no person {person_id}", code="person_not_found")


async def create_person(conn: AsyncConnection[Any], data: PersonCreate) -> tuple[UUID, dict[str, int]]:
    """Insert the person and add them to `data.galleries`; Conflict on a taken external_id.
    Returns the id and the new version of each gallery."""
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
    return person_id, await add_to_galleries(conn, person_id, data.galleries)


async def add_to_galleries(
    conn: AsyncConnection[Any], person_id: UUID, galleries: Sequence[str]
) -> dict[str, int]:
    """Add the person to existing galleries (central/galleries/repository.add_member: each gallery
    gets a version upserting the person's templates of its model); returns {gallery: version}."""
    wanted = sorted(set(galleries))
    if not wanted:
        return {}
    cur = await conn.execute("SELECT id FROM galleries WHERE id = ANY(%s)", (wanted,))
    unknown = sorted(set(wanted) - {row[0] for row in await cur.fetchall()})
    if unknown:
        raise InvalidInput(f"unknown galleries {unknown}: create them first", code="unknown_gallery")
    versions: dict[str, int] = {}
    for gallery_id in wanted:
        version = await add_member(conn, await get_gallery(conn, gallery_id, lock=True), person_id)
        if version is not None:
            versions[gallery_id] = version
    return versions


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


async def list_people(
    conn: AsyncConnection[Any], limit: int, cursor: str | None
) -> tuple[list[PersonRead], str | None]:
    after = decode_cursor(cursor)
    rows = await (await conn.execute(_PAGE, (*after, limit + 1))).fetchall()
    people = [_read(row) for row in rows[:limit]]
    following = None
    if len(rows) > limit:
        last = people[-1]
        following = encode_cursor(last.created_at, last.id)
    return people, following


async def get_or_create_person(
    runtime: Runtime, principal: Principal | None, external_id: str, display_name: str
) -> UUID:
    """The id of the live person with `external_id`, creating them (audited) when there is none.

    An existing person keeps their display name. Safe under concurrency: two callers racing on one
    external id get the same person. InvalidInput for an id or name the API would refuse."""
    check_person_text(external_id, display_name)
    async with runtime.pool.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO people (external_id, display_name) VALUES (%s, %s)"
            " ON CONFLICT (external_id) DO NOTHING RETURNING id",
            (external_id, display_name),
        )
        row = await cur.fetchone()
        if row is not None:
            await audit.record(conn, principal, "person.create", "person", row[0])
            return UUID(str(row[0]))
        cur = await conn.execute("SELECT id FROM people WHERE external_id = %s", (external_id,))
        found = await cur.fetchone()
    if found is None:  # erased between the two statements; the caller may retry
        raise NotFound(f"person {external_id!r} was erased while being looked up; retry")
    return UUID(str(found[0]))
