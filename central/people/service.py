"""The people service: create, read, list, update and erase people; their photos and templates.

Scopes: viewers read; operators create, update and delete templates; admins erase. People are not
bound to a site, but a site-restricted key reads (lists, shows, photos, templates) only the people in a
gallery scoped to one of its sites: the others are `person_not_found` to it, as if absent (those are
who its sites' edges recognise; the rest is none of its business). Every write needs a key without a
site restriction (`require(principal, scope, None)`). Every write is audited in its own transaction.

Erase (`DELETE /people/{id}`), in one transaction: lock the person row (FOR UPDATE, so no enrollment can
commit around it), append `deleted_people` to every gallery the person is in (before the memberships
go), tombstone their events (`erased_at` set, `crop_key` cleared, the crop keys collected first),
delete templates, enrollment photos and memberships, queue erase commands for the edges (distribution),
delete the stored snapshots of those galleries and of galleries the person left earlier (they hold the
person's embeddings; distribution builds new ones), queue every object (the photo folder, the crops,
the snapshot files) in `pending_deletions`, clear the person's row to a tombstone and audit.
After the commit the queued objects are deleted (central/cleanup/); if any remain the request fails
with 503 `erase_incomplete` naming them, and repeating the DELETE retries them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import anyio.to_thread
import msgspec
from psycopg import AsyncConnection

from central import audit
from central.cleanup.service import CleanupService
from central.db.pool import AsyncPool
from central.distribution.service import DistributionService
from central.errors import NotFound, Unavailable
from central.galleries.service import GalleryService
from central.people import repository as repo
from central.people import sightings
from central.people.schemas import (
    EraseReport,
    PersonCreate,
    PersonPage,
    PersonRead,
    PersonUpdate,
    PhotoRead,
    TemplateDeleted,
    TemplateRead,
)
from central.principal import Principal, Scope, require
from central.storage import ObjectStore, person_photos_prefix


class PeopleService:
    """The people of one app. `presign_ttl_s`: how long photo URLs stay valid."""

    def __init__(  # one argument per thing people need, wired by central/lifespan.py
        self,
        pool: AsyncPool,
        store: ObjectStore,
        galleries: GalleryService,
        distribution: DistributionService,
        cleanup: CleanupService,
        *,
        presign_ttl_s: int,
        sighting_threshold: float = 0.363,
    ) -> None:
        self.sighting_threshold = sighting_threshold  # erase: unknown sightings this close go too
        self.pool = pool
        self.store = store
        self.galleries = galleries
        self.distribution = distribution
        self.cleanup = cleanup
        self.presign_ttl_s = presign_ttl_s

    async def create(self, principal: Principal, data: PersonCreate) -> PersonRead:
        """Create a person and add them to `data.galleries`; Conflict `duplicate_external_id`."""
        require(principal, Scope.OPERATOR, None)
        async with self.pool.connection() as conn:
            person_id = await repo.create_person(conn, data)
            versions = await self.galleries.add_person(conn, person_id, data.galleries)
            await audit.record(
                conn, principal, "person.create", "person", person_id, details={"gallery_versions": versions}
            )
            return await repo.get_person(conn, person_id)

    async def list_people(
        self, principal: Principal | None, limit: int, cursor: str | None, name: str | None = None
    ) -> PersonPage:
        """A page of the people `principal` may see; `name`: only those whose name or external id
        contains it (any case)."""
        sites = principal.sites if principal is not None and principal.kind == "key" else ()
        async with self.pool.connection() as conn:
            items, following = await repo.list_people(conn, limit, cursor, sites, name)
        return PersonPage(items, following)

    async def names(self, ids: Sequence[UUID]) -> dict[UUID, str]:
        """What to call each of these people (display name, else external id); erased ones are absent."""
        if not ids:
            return {}
        async with self.pool.connection() as conn:
            return await repo.names(conn, ids)

    async def find(self, external_id: str, principal: Principal | None = None) -> PersonRead:
        """The live person with `external_id` (the console's forms name people so); NotFound."""
        async with self.pool.connection() as conn:
            found = await repo.find_by_external_id(conn, external_id)
        if found is None:
            raise NotFound(f"no person with external id {external_id!r}", code="person_not_found")
        return await self.get(found, principal)

    async def get(self, person_id: UUID, principal: Principal | None = None) -> PersonRead:
        """The live person; NotFound `person_not_found` (also for an erased one, and for one that a
        site-restricted `principal` may not see)."""
        async with self.pool.connection() as conn:
            person = await repo.get_person(conn, person_id)
            await _require_seen(conn, principal, person_id)
            return person

    async def update(self, principal: Principal, person_id: UUID, data: PersonUpdate) -> PersonRead:
        require(principal, Scope.OPERATOR, None)
        async with self.pool.connection() as conn:
            changed = await repo.update_person(conn, person_id, data)
            if changed:
                await audit.record(
                    conn, principal, "person.update", "person", person_id, details={"fields": changed}
                )
            return await repo.get_person(conn, person_id)

    async def photos(self, person_id: UUID, principal: Principal | None = None) -> list[PhotoRead]:
        """The person's stored photos, each with a presigned URL valid `presign_ttl_s`."""
        async with self.pool.connection() as conn:
            await repo.get_person(conn, person_id)
            await _require_seen(conn, principal, person_id)
            rows = await repo.list_photos(conn, person_id)
        ttl = self.presign_ttl_s

        def sign() -> list[str]:
            return [self.store.presigned_get(key, ttl) for _, key in rows]

        urls = await anyio.to_thread.run_sync(sign)
        return [msgspec.structs.replace(photo, url=url) for (photo, _), url in zip(rows, urls, strict=True)]

    async def templates(self, person_id: UUID, principal: Principal | None = None) -> list[TemplateRead]:
        async with self.pool.connection() as conn:
            await repo.get_person(conn, person_id)
            await _require_seen(conn, principal, person_id)
            return await repo.list_templates(conn, person_id)

    async def erase(self, principal: Principal, person_id: UUID) -> EraseReport:
        """Erase the person's face data and personal fields (see the module doc); NotFound for an id that
        never existed."""
        require(principal, Scope.ADMIN, None)
        async with self.pool.connection() as conn:
            erased = await repo.lock_for_erase(conn, person_id)
            if erased is None:
                raise NotFound(f"no person {person_id}", code="person_not_found")
            report = (
                EraseReport(person_id, 0, 0, 0, 0, 0, {}, already_erased=True)
                if erased
                else await self._erase_rows(conn, principal, person_id)
            )
        deleted, remaining = await self.cleanup.purge(person_id)
        if remaining:
            raise Unavailable(
                f"the person's rows are erased but {len(remaining)} stored objects could not be deleted "
                "from object storage; check the store and repeat this DELETE to retry them",
                code="erase_incomplete",
                details={"remaining": remaining[:100]},
            )
        return msgspec.structs.replace(report, objects_deleted=deleted)

    async def _erase_rows(
        self, conn: AsyncConnection[Any], principal: Principal, person_id: UUID
    ) -> EraseReport:
        left = await repo.galleries_left(conn, person_id)
        versions = await self.galleries.record_person_change(conn, person_id, deleted_person=True)
        crops = await repo.crop_keys(conn, person_id)
        events = await repo.tombstone_events(conn, person_id)
        found = await sightings.matching_sightings(conn, person_id, self.sighting_threshold)
        crops += await sightings.drop_sightings(conn, sorted(found))
        templates, photos = await repo.delete_face_data(conn, person_id)
        galleries = sorted({*versions, *left})
        await self.distribution.queue_erase(conn, person_id, galleries)  # erase commands to their edges
        snapshots = await repo.delete_snapshots(conn, galleries)
        await repo.tombstone(conn, person_id)
        await self.cleanup.queue(conn, person_id, [*crops, *snapshots], [person_photos_prefix(person_id)])
        counts = {
            "templates": templates,
            "photos": photos,
            "events": events,
            "snapshots": len(snapshots),
            "sightings": len(found),
        }
        await audit.record(
            conn,
            principal,
            "person.erase",
            "person",
            person_id,
            details={**counts, "gallery_versions": versions},
        )
        return EraseReport(
            person_id, templates, photos, events, len(snapshots), 0, versions, sightings=len(found)
        )

    async def delete_template(
        self, principal: Principal, person_id: UUID, template_id: UUID
    ) -> TemplateDeleted:
        """Delete one template and, when no other template uses it, its source photo (row and object)."""
        require(principal, Scope.OPERATOR, None)
        async with self.pool.connection() as conn:
            await repo.lock_person(conn, person_id)
            existed, photo_id = await repo.delete_template(conn, person_id, template_id)
            if not existed:
                raise NotFound(f"person {person_id} has no template {template_id}", code="template_not_found")
            photo_key = await repo.drop_unused_photo(conn, photo_id)
            if photo_key is not None:
                await self.cleanup.queue(conn, person_id, [photo_key])
            versions = await self.galleries.record_person_change(
                conn, person_id, deleted_templates=[template_id]
            )
            await audit.record(
                conn,
                principal,
                "person.template_delete",
                "person",
                person_id,
                details={"template_id": str(template_id), "photo_deleted": photo_key is not None},
            )
        _, remaining = await self.cleanup.purge(person_id)
        if remaining:
            raise Unavailable(
                "the template is deleted but its photo could not be deleted from object storage: "
                f"{remaining}; check the store and repeat the request (or erase the person) to retry",
                code="object_delete_failed",
            )
        return TemplateDeleted(template_id, photo_key is not None, versions)

    # --- for other domains ------------------------------------------------------------------------------

    async def get_or_create(self, principal: Principal | None, external_id: str, display_name: str) -> UUID:
        """The id of the live person with `external_id`, creating them (audited) when there is none.

        An existing person keeps their display name. Safe under concurrency: two callers racing on one
        external id get the same person. InvalidInput for an id or name the API would refuse."""
        repo.check_person_text(external_id, display_name)
        async with self.pool.connection() as conn:
            created = await repo.insert_if_absent(conn, external_id, display_name)
            if created is not None:
                await audit.record(conn, principal, "person.create", "person", created)
                return created
            found = await repo.find_by_external_id(conn, external_id)
        if found is None:  # erased between the two statements; the caller may retry
            raise NotFound(f"person {external_id!r} was erased while being looked up; retry")
        return found

    async def lock(self, conn: AsyncConnection[Any], person_id: UUID, *, share: bool = False) -> None:
        """Lock the live person's row in the caller's transaction (FOR SHARE or FOR UPDATE); NotFound if
        erased or missing. Erase takes FOR UPDATE first, so writers that lock first never race it."""
        await repo.lock_person(conn, person_id, share=share)


async def _require_seen(conn: AsyncConnection[Any], principal: Principal | None, person_id: UUID) -> None:
    """NotFound `person_not_found` when a site-restricted key may not see the person (see above)."""
    if principal is None or principal.kind != "key" or not principal.sites:
        return
    if not await repo.in_sites(conn, person_id, principal.sites):
        raise NotFound(
            f"no person {person_id} in the galleries of this key's sites {list(principal.sites)}",
            code="person_not_found",
        )
