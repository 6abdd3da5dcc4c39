"""`/api/v1/galleries`: galleries, their scope (sites) and members, and the version log.

Every change and its version-log entry commit in one transaction (central/galleries/changes.py); who
may see or change a gallery is decided by its sites (central/galleries/access.py). The snapshot routes
live in central/galleries/snapshot_routes.py.
"""

from __future__ import annotations

import logging
from typing import Annotated
from uuid import UUID

import anyio.to_thread
import msgspec
from litestar import delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.types import ControllerRouterHandler

from central import audit
from central.auth.errors import Forbidden
from central.auth.scopes import Principal, Scope
from central.galleries import repository as repo
from central.galleries.access import require_change, require_visible
from central.galleries.schemas import (
    ChangesRead,
    GalleryCreate,
    GalleryPage,
    GalleryRead,
    GallerySummary,
    GalleryUpdate,
    MemberPage,
    MembershipRead,
)
from central.galleries.snapshot_routes import build_snapshot_now, snapshot
from central.runtime import Runtime
from central.schemas import PageLimit
from central.storage import StorageError
from central.storage.keys import segment

log = logging.getLogger("central.galleries")

TAGS = ["galleries"]


@post("/galleries", opt={"scope": Scope.OPERATOR}, tags=TAGS)
async def create_gallery(
    data: JSONBody[GalleryCreate], principal: NamedDependency[Principal], runtime: NamedDependency[Runtime]
) -> GalleryRead:
    """Create a gallery at version 0 (empty). A site-restricted key may only scope it to its sites."""
    sites = sorted(set(data.sites))
    require_change(principal, Scope.OPERATOR, sites)
    model_id = data.model_id or default_model(runtime)
    async with runtime.pool.connection() as conn:
        gallery = await repo.create_gallery(conn, data.id, data.name, model_id, sites)
        details = {"sites": sites, "model_id": model_id}
        await audit.record(conn, principal, "gallery.create", "gallery", gallery.id, details=details)
    return read(gallery, 0, 0)


@get("/galleries", opt={"scope": Scope.VIEWER}, tags=TAGS)
async def list_galleries(
    principal: NamedDependency[Principal],
    runtime: NamedDependency[Runtime],
    after: FromQuery[str] = "",
    limit: PageLimit = 100,
    site: FromQuery[str | None] = None,
) -> GalleryPage:
    """The galleries this key may see, by id; `site` keeps those scoped to that site."""
    sites = list(principal.sites) or None
    if site is not None:
        if not principal.allows_site(site):
            raise Forbidden("site_not_allowed", f"key {principal.id} may not act on site {site!r}")
        sites = [site]
    async with runtime.pool.connection() as conn:
        rows = await repo.list_galleries(conn, after, limit, sites)
    items = [summary(g) for g in rows]
    return GalleryPage(items, rows[-1].id if len(rows) == limit else None)


@get("/galleries/{gallery_id:str}", opt={"scope": Scope.VIEWER}, tags=TAGS)
async def get_gallery(
    gallery_id: FromPath[str], principal: NamedDependency[Principal], runtime: NamedDependency[Runtime]
) -> GalleryRead:
    async with runtime.pool.connection() as conn:
        gallery = await repo.get_gallery(conn, gallery_id)
        require_visible(principal, gallery.id, gallery.sites)
        members, templates = await repo.counts(conn, gallery)
    return read(gallery, members, templates)


@patch("/galleries/{gallery_id:str}", opt={"scope": Scope.OPERATOR}, tags=TAGS)
async def update_gallery(
    gallery_id: FromPath[str],
    data: JSONBody[GalleryUpdate],
    principal: NamedDependency[Principal],
    runtime: NamedDependency[Runtime],
) -> GalleryRead:
    """Rename and/or rescope; a new scope appends a version `{"sites": [...]}` in the same transaction."""
    async with runtime.pool.connection() as conn:
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


@delete("/galleries/{gallery_id:str}", opt={"scope": Scope.ADMIN}, tags=TAGS)
async def delete_gallery(
    gallery_id: FromPath[str], principal: NamedDependency[Principal], runtime: NamedDependency[Runtime]
) -> None:
    """Delete the gallery, its log and snapshot rows; then its snapshot objects (best effort, logged)."""
    async with runtime.pool.connection() as conn:
        gallery = await repo.get_gallery(conn, gallery_id, lock=True)
        require_change(principal, Scope.ADMIN, gallery.sites)
        await repo.delete_gallery(conn, gallery.id)
        details = {"version": gallery.current_version, "sites": list(gallery.sites)}
        await audit.record(conn, principal, "gallery.delete", "gallery", gallery.id, details=details)
    prefix = f"snapshots/{segment(gallery.id, 'gallery id')}/"
    try:
        removed = await anyio.to_thread.run_sync(runtime.store.delete_prefix, prefix)
    except StorageError as err:  # the rows are gone; orphaned objects are overwritten by a same-id gallery
        log.warning("gallery_snapshots_not_deleted", extra={"gallery": gallery.id, "error": str(err)})
        return
    log.info("gallery_deleted", extra={"gallery": gallery.id, "snapshot_objects": removed})


@put("/galleries/{gallery_id:str}/people/{person_id:uuid}", opt={"scope": Scope.OPERATOR}, tags=TAGS)
async def add_member(
    gallery_id: FromPath[str],
    person_id: FromPath[UUID],
    principal: NamedDependency[Principal],
    runtime: NamedDependency[Runtime],
) -> MembershipRead:
    """Add a person: one version upserting their templates of the gallery's model. Idempotent: adding
    a member again appends nothing (`version` null)."""
    async with runtime.pool.connection() as conn:
        gallery = await repo.get_gallery(conn, gallery_id)
        require_change(principal, Scope.OPERATOR, gallery.sites)
        version = await repo.add_member(conn, gallery, person_id)
        if version is not None:
            details = {"person_id": str(person_id), "version": version}
            await audit.record(conn, principal, "gallery.add_person", "gallery", gallery.id, details=details)
    return MembershipRead(gallery.id, person_id, True, version)


@delete(
    "/galleries/{gallery_id:str}/people/{person_id:uuid}",
    opt={"scope": Scope.OPERATOR},
    tags=TAGS,
    status_code=200,
)
async def remove_member(
    gallery_id: FromPath[str],
    person_id: FromPath[UUID],
    principal: NamedDependency[Principal],
    runtime: NamedDependency[Runtime],
) -> MembershipRead:
    """Remove a person: one version with `deleted_people: [person]`; 404 if they are not a member."""
    async with runtime.pool.connection() as conn:
        gallery = await repo.get_gallery(conn, gallery_id)
        require_change(principal, Scope.OPERATOR, gallery.sites)
        version = await repo.remove_member(conn, gallery, person_id)
        details = {"person_id": str(person_id), "version": version}
        await audit.record(conn, principal, "gallery.remove_person", "gallery", gallery.id, details=details)
    return MembershipRead(gallery.id, person_id, False, version)


@get("/galleries/{gallery_id:str}/people", opt={"scope": Scope.VIEWER}, tags=TAGS)
async def list_members(
    gallery_id: FromPath[str],
    principal: NamedDependency[Principal],
    runtime: NamedDependency[Runtime],
    after: FromQuery[UUID | None] = None,
    limit: PageLimit = 100,
) -> MemberPage:
    """Members by person id; pass `next` as `?after=` for the following page."""
    async with runtime.pool.connection() as conn:
        gallery = await repo.get_gallery(conn, gallery_id)
        require_visible(principal, gallery.id, gallery.sites)
        items = await repo.list_members(conn, gallery.id, after, limit)
    return MemberPage(items, str(items[-1].person_id) if len(items) == limit else None)


@get(
    "/galleries/{gallery_id:str}/changes",
    opt={"scope": Scope.EDGE, "key_scope": Scope.VIEWER},
    tags=TAGS,
)
async def list_changes(
    gallery_id: FromPath[str],
    principal: NamedDependency[Principal],
    runtime: NamedDependency[Runtime],
    after: Annotated[int, QueryParameter(ge=0, description="versions after this one")] = 0,
    limit: PageLimit = 100,
) -> ChangesRead:
    """The version log after `after`, oldest first: each version's time and change counts. Edges (of
    the gallery's sites) and viewer keys may read it."""
    async with runtime.pool.connection() as conn:
        gallery = await repo.get_gallery(conn, gallery_id)
        require_visible(principal, gallery.id, gallery.sites)
        items = await repo.list_changes(conn, gallery.id, after, limit)
    return ChangesRead(gallery.id, gallery.current_version, items)


def default_model(runtime: Runtime) -> str:
    """The recognizer central enrolls with: new galleries take its templates by default."""
    embedder = runtime.pipeline.embedder
    return embedder.model_id if embedder is not None else runtime.settings.recognizer


def summary(gallery: repo.Gallery) -> GallerySummary:
    return GallerySummary(
        gallery.id,
        gallery.name,
        gallery.model_id,
        list(gallery.sites),
        gallery.current_version,
        gallery.created_at,
    )


def read(gallery: repo.Gallery, members: int, templates: int) -> GalleryRead:
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


ROUTES: list[ControllerRouterHandler] = [
    create_gallery,
    list_galleries,
    get_gallery,
    update_gallery,
    delete_gallery,
    add_member,
    remove_member,
    list_members,
    list_changes,
    snapshot,
    build_snapshot_now,
]
