"""Erasing a person (`DELETE /people/{id}`) and deleting one template.

Erase, in one transaction: lock the person row (FOR UPDATE, so no enrollment can commit around
it), append `deleted_people` to every gallery the person is in (before the memberships go), tombstone
their events (`erased_at` set, `crop_key` cleared, the crop keys collected first), delete templates,
enrollment photos and memberships, delete the stored snapshots of those galleries and of galleries
the person left earlier (they hold the person's embeddings; distribution builds new ones), queue
every object (the photo folder, the crops, the snapshot files) in `pending_deletions`, clear the
person's row to a tombstone and audit.
After the commit the queued objects are deleted (see cleanup.py); if any remain the request fails
with 503 `erase_incomplete` naming them, and repeating the DELETE retries them.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg import AsyncConnection

from central import audit
from central.auth.scopes import Principal
from central.distribution.commands import queue_erase
from central.errors import NotFound, Unavailable
from central.galleries.changes import record_person_change
from central.people.cleanup import purge_pending, queue_deletions
from central.people.repository import lock_person
from central.people.schemas import EraseReport, TemplateDeleted
from central.runtime import Runtime
from central.storage import person_photos_prefix

_STATE = "SELECT deleted_at IS NOT NULL FROM people WHERE id = %s FOR UPDATE"
_CROPS = "SELECT crop_key FROM events WHERE person_id = %s AND crop_key IS NOT NULL"
_TOMBSTONE_EVENTS = (
    "UPDATE events SET erased_at = now(), crop_key = NULL WHERE person_id = %s AND erased_at IS NULL"
)
_SNAPSHOTS = "DELETE FROM snapshots WHERE gallery_id = ANY(%s) RETURNING object_key"
# Galleries the person left before (their removal wrote deleted_people): older stored snapshots of
# those still hold the person's embeddings. A scan of the change log; erasure is rare.
_LEFT_GALLERIES = "SELECT DISTINCT gallery_id FROM gallery_changes WHERE change->'deleted_people' ? %s"
_TOMBSTONE = """
UPDATE people SET external_id = NULL, display_name = '', metadata = '{}', deleted_at = now() WHERE id = %s
"""


async def erase_person(runtime: Runtime, principal: Principal, person_id: UUID) -> EraseReport:
    """Erase the person's face data and personal fields; NotFound for an id that never existed."""
    async with runtime.pool.connection() as conn:
        row = await (await conn.execute(_STATE, (person_id,))).fetchone()
        if row is None:
            raise NotFound(f"no person {person_id}", code="person_not_found")
        report = (
            EraseReport(person_id, 0, 0, 0, 0, 0, {}, already_erased=True)
            if row[0]
            else await _erase_rows(conn, principal, person_id)
        )
    deleted, remaining = await purge_pending(runtime, person_id)
    if remaining:
        raise Unavailable(
            f"the person's rows are erased but {len(remaining)} stored objects could not be deleted "
            "from object storage; check the store and repeat this DELETE to retry them",
            code="erase_incomplete",
            details={"remaining": remaining[:100]},
        )
    return EraseReport(
        person_id,
        report.templates,
        report.photos,
        report.events_tombstoned,
        report.snapshots,
        deleted,
        report.gallery_versions,
        report.already_erased,
    )


async def _erase_rows(conn: AsyncConnection[Any], principal: Principal, person_id: UUID) -> EraseReport:
    left = [r[0] for r in await (await conn.execute(_LEFT_GALLERIES, (str(person_id),))).fetchall()]
    versions = await record_person_change(conn, person_id, deleted_person=True)
    crops = [r[0] for r in await (await conn.execute(_CROPS, (person_id,))).fetchall()]
    events = (await conn.execute(_TOMBSTONE_EVENTS, (person_id,))).rowcount
    templates = (await conn.execute("DELETE FROM templates WHERE person_id = %s", (person_id,))).rowcount
    photos = (await conn.execute("DELETE FROM enrollment_photos WHERE person_id = %s", (person_id,))).rowcount
    await conn.execute("DELETE FROM gallery_people WHERE person_id = %s", (person_id,))
    galleries = sorted({*versions, *left})
    await queue_erase(conn, person_id, galleries)  # erase commands to their sites' edges (distribution)
    snapshots = [r[0] for r in await (await conn.execute(_SNAPSHOTS, (galleries,))).fetchall()]
    await conn.execute(_TOMBSTONE, (person_id,))
    await queue_deletions(conn, person_id, [*crops, *snapshots], [person_photos_prefix(person_id)])
    counts = {"templates": templates, "photos": photos, "events": events, "snapshots": len(snapshots)}
    await audit.record(
        conn, principal, "person.erase", "person", person_id, details={**counts, "gallery_versions": versions}
    )
    return EraseReport(person_id, templates, photos, events, len(snapshots), 0, versions)


async def delete_template(
    runtime: Runtime, principal: Principal, person_id: UUID, template_id: UUID
) -> TemplateDeleted:
    """Delete one template and, when no other template uses it, its source photo (row and object)."""
    async with runtime.pool.connection() as conn:
        await lock_person(conn, person_id)
        cur = await conn.execute(
            "DELETE FROM templates WHERE id = %s AND person_id = %s RETURNING source_photo_id",
            (template_id, person_id),
        )
        row = await cur.fetchone()
        if row is None:
            raise NotFound(f"person {person_id} has no template {template_id}", code="template_not_found")
        photo_key = await _drop_unused_photo(conn, row[0])
        if photo_key is not None:
            await queue_deletions(conn, person_id, [photo_key])
        versions = await record_person_change(conn, person_id, deleted_templates=[template_id])
        await audit.record(
            conn,
            principal,
            "person.template_delete",
            "person",
            person_id,
            details={"template_id": str(template_id), "photo_deleted": photo_key is not None},
        )
    _, remaining = await purge_pending(runtime, person_id)
    if remaining:
        raise Unavailable(
            f"the template is deleted but its photo could not be deleted from object storage: {remaining}; "
            "check the store and repeat the request (or erase the person) to retry",
            code="object_delete_failed",
        )
    return TemplateDeleted(template_id, photo_key is not None, versions)


async def _drop_unused_photo(conn: AsyncConnection[Any], photo_id: UUID | None) -> str | None:
    if photo_id is None:
        return None
    cur = await conn.execute(
        "DELETE FROM enrollment_photos ep WHERE ep.id = %s"
        " AND NOT EXISTS (SELECT 1 FROM templates t WHERE t.source_photo_id = ep.id) RETURNING object_key",
        (photo_id,),
    )
    row = await cur.fetchone()
    return str(row[0]) if row else None
