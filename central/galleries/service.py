"""The galleries service: galleries, their scope (sites) and members, the version log and snapshots.

Every change and its version-log entry commit in one transaction (central/galleries/repository.py),
audited in the same transaction; who may see or change a gallery is decided by its sites
(central/galleries/access.py). Other domains append to the log through `record_person_change` and
`add_person` inside their own transactions, and distribution stores snapshots with `store_snapshot`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import anyio.to_thread
import msgspec
from psycopg import AsyncConnection

from central import audit
from central.db.pool import AsyncPool
from central.errors import Forbidden, InvalidInput
from central.galleries import repository as repo
from central.galleries.access import require_change, require_visible
from central.galleries.repository import Gallery
from central.galleries.schemas import (
    ChangesRead,
    GalleryCreate,
    GalleryPage,
    GalleryRead,
    GallerySummary,
    GalleryUpdate,
    MemberPage,
    MembershipRead,
    SnapshotRead,
)
from central.galleries.snapshots import SnapshotFile, Snapshots
from central.principal import Principal, Scope
from central.storage import ObjectStore, StorageError
from central.storage.keys import segment
from common.models.manifest import ModelManifest

log = logging.getLogger("central.galleries")


class GalleryService:
    """The galleries of one app. `default_model` is the recognizer central enrolls with (new galleries
    take its templates unless they name another model); `recognizer` is its manifest, when loaded."""

    def __init__(
        self, pool: AsyncPool, store: ObjectStore, *, default_model: str, recognizer: ModelManifest | None
    ) -> None:
        self.pool = pool
        self.store = store
        self.default_model = default_model
        self.snapshots = Snapshots(pool, store, recognizer)

    async def create(self, principal: Principal, data: GalleryCreate) -> GalleryRead:
        sites = sorted(set(data.sites))
        require_change(principal, Scope.OPERATOR, sites)
        model_id = data.model_id or self.default_model
        async with self.pool.connection() as conn:
            gallery = await repo.create_gallery(conn, data.id, data.name, model_id, sites)
            details = {"sites": sites, "model_id": model_id}
            await audit.record(conn, principal, "gallery.create", "gallery", gallery.id, details=details)
        return read(gallery, 0, 0)

    async def list_galleries(
        self, principal: Principal, after: str, limit: int, site: str | None
    ) -> GalleryPage:
        """The galleries `principal` may see, by id after `after`; `site` keeps those scoped to that site."""
        sites = list(principal.sites) or None
        if site is not None:
            if not principal.allows_site(site):
                raise Forbidden("site_not_allowed", f"key {principal.id} may not act on site {site!r}")
            sites = [site]
        async with self.pool.connection() as conn:
            rows = await repo.list_galleries(conn, after, limit, sites)
        items = [summary(g) for g in rows]
        return GalleryPage(items, rows[-1].id if len(rows) == limit else None)

    async def get(self, principal: Principal, gallery_id: str) -> GalleryRead:
        async with self.pool.connection() as conn:
            gallery = await repo.get_gallery(conn, gallery_id)
            require_visible(principal, gallery.id, gallery.sites)
            members, templates = await repo.counts(conn, gallery)
        return read(gallery, members, templates)

    async def update(self, principal: Principal, gallery_id: str, data: GalleryUpdate) -> GalleryRead:
        """Rename and/or rescope; a new scope appends a version `{"sites": [...]}` in the same transaction."""
        async with self.pool.connection() as conn:
            gallery = await repo.get_gallery(conn, gallery_id, lock=True)
            require_change(principal, Scope.OPERATOR, gallery.sites)
            details: dict[str, object] = {}
            if data.name is not msgspec.UNSET:
                await repo.rename_gallery(conn, gallery.id, data.name)
                details["name"] = data.name
            if data.sites is not msgspec.UNSET:
                sites = sorted(set(data.sites))
                require_change(principal, Scope.OPERATOR, sites)
                details["sites"], details["version"] = sites, await repo.set_sites(conn, gallery, sites)
            await audit.record(conn, principal, "gallery.update", "gallery", gallery.id, details=details)
            gallery = await repo.get_gallery(conn, gallery.id)
            members, templates = await repo.counts(conn, gallery)
        return read(gallery, members, templates)

    async def delete(self, principal: Principal, gallery_id: str) -> None:
        """Delete the gallery, its log and snapshot rows; then its snapshot objects (best effort, logged)."""
        async with self.pool.connection() as conn:
            gallery = await repo.get_gallery(conn, gallery_id, lock=True)
            require_change(principal, Scope.ADMIN, gallery.sites)
            await repo.delete_gallery(conn, gallery.id)
            details = {"version": gallery.current_version, "sites": list(gallery.sites)}
            await audit.record(conn, principal, "gallery.delete", "gallery", gallery.id, details=details)
        prefix = f"snapshots/{segment(gallery.id, 'gallery id')}/"
        try:
            removed = await anyio.to_thread.run_sync(self.store.delete_prefix, prefix)
        except (
            StorageError
        ) as err:  # the rows are gone; orphaned objects are overwritten by a same-id gallery
            log.warning("gallery_snapshots_not_deleted", extra={"gallery": gallery.id, "error": str(err)})
            return
        log.info("gallery_deleted", extra={"gallery": gallery.id, "snapshot_objects": removed})

    async def add_member(self, principal: Principal, gallery_id: str, person_id: UUID) -> MembershipRead:
        """One version upserting the person's templates of the gallery's model; none if already a member."""
        async with self.pool.connection() as conn:
            gallery = await repo.get_gallery(conn, gallery_id)
            require_change(principal, Scope.OPERATOR, gallery.sites)
            version = await repo.add_member(conn, gallery, person_id)
            if version is not None:
                details = {"person_id": str(person_id), "version": version}
                await audit.record(
                    conn, principal, "gallery.add_person", "gallery", gallery.id, details=details
                )
        return MembershipRead(gallery.id, person_id, True, version)

    async def remove_member(self, principal: Principal, gallery_id: str, person_id: UUID) -> MembershipRead:
        """One version with `deleted_people: [person]`; NotFound if they are not a member."""
        async with self.pool.connection() as conn:
            gallery = await repo.get_gallery(conn, gallery_id)
            require_change(principal, Scope.OPERATOR, gallery.sites)
            version = await repo.remove_member(conn, gallery, person_id)
            details = {"person_id": str(person_id), "version": version}
            await audit.record(
                conn, principal, "gallery.remove_person", "gallery", gallery.id, details=details
            )
        return MembershipRead(gallery.id, person_id, False, version)

    async def members(
        self, principal: Principal, gallery_id: str, after: UUID | None, limit: int
    ) -> MemberPage:
        async with self.pool.connection() as conn:
            gallery = await repo.get_gallery(conn, gallery_id)
            require_visible(principal, gallery.id, gallery.sites)
            items = await repo.list_members(conn, gallery.id, after, limit)
        return MemberPage(items, str(items[-1].person_id) if len(items) == limit else None)

    async def changes(self, principal: Principal, gallery_id: str, after: int, limit: int) -> ChangesRead:
        async with self.pool.connection() as conn:
            gallery = await repo.get_gallery(conn, gallery_id)
            require_visible(principal, gallery.id, gallery.sites)
            items = await repo.list_changes(conn, gallery.id, after, limit)
        return ChangesRead(gallery.id, gallery.current_version, items)

    async def snapshot(self, principal: Principal, gallery_id: str, version: int | None) -> SnapshotFile:
        """The snapshot file of `version` (default: the current one) of a gallery `principal` may see."""
        async with self.pool.connection() as conn:
            gallery = await repo.get_gallery(conn, gallery_id)
        require_visible(principal, gallery.id, gallery.sites)
        return await self.snapshots.file(gallery, gallery.current_version if version is None else version)

    async def build_snapshot_now(self, principal: Principal, gallery_id: str) -> SnapshotRead:
        """Build and store the snapshot of the current version now (or return the stored one)."""
        async with self.pool.connection() as conn:
            gallery = await repo.get_gallery(conn, gallery_id)
        require_change(principal, Scope.OPERATOR, gallery.sites)
        found = await self.snapshots.file(gallery, gallery.current_version)
        return found.info

    # --- for other domains, in their transactions ------------------------------------------------------

    async def add_person(
        self, conn: AsyncConnection[Any], person_id: UUID, galleries: Sequence[str]
    ) -> dict[str, int]:
        """Add the person to existing galleries (each gets a version upserting the person's templates of
        its model), in the caller's transaction; returns {gallery: version}. InvalidInput naming unknown
        galleries."""
        wanted = sorted(set(galleries))
        if not wanted:
            return {}
        unknown = await repo.unknown_galleries(conn, wanted)
        if unknown:
            raise InvalidInput(f"unknown galleries {unknown}: create them first", code="unknown_gallery")
        versions: dict[str, int] = {}
        for gallery_id in wanted:
            version = await repo.add_member(
                conn, await repo.get_gallery(conn, gallery_id, lock=True), person_id
            )
            if version is not None:
                versions[gallery_id] = version
        return versions

    async def record_person_change(
        self,
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
        """Append one change to every gallery of the person, in the caller's transaction (see
        central/galleries/repository.py `record_person_change`); returns {gallery id: new version}."""
        return await repo.record_person_change(
            conn,
            person_id,
            upserts=upserts,
            deleted_templates=deleted_templates,
            deleted_person=deleted_person,
            negatives=negatives,
            deleted_negatives=deleted_negatives,
            negatives_model=negatives_model,
        )

    async def store_snapshot(
        self, gallery_id: str, model_id: str, current_version: int, version: int
    ) -> SnapshotFile:
        """Build and store the snapshot of `version` (distribution's snapshot policy); Gone, NotFound."""
        gallery = Gallery(gallery_id, "", model_id, current_version, datetime.now(UTC), ())
        return await self.snapshots.build_and_store(gallery, version)


def summary(gallery: Gallery) -> GallerySummary:
    return GallerySummary(
        gallery.id,
        gallery.name,
        gallery.model_id,
        list(gallery.sites),
        gallery.current_version,
        gallery.created_at,
    )


def read(gallery: Gallery, members: int, templates: int) -> GalleryRead:
    return GalleryRead(
        gallery.id,
        gallery.name,
        gallery.model_id,
        list(gallery.sites),
        gallery.current_version,
        gallery.created_at,
        members,
        templates,
    )
