"""`/api/v1/galleries`: galleries, their scope (sites) and members, the version log, and snapshots.

The rules (who may see or change a gallery, versions, audit) are in central/galleries/service.py.

Snapshots (`/galleries/{id}/snapshot(s)`): edges download with their edge credential (galleries of
their site only); API keys of viewer scope and above may download the galleries they see. The body is
the MessagePack file itself (central/galleries/snapshots.py) with `X-Facegate-Sha256`,
`X-Facegate-Version` and `ETag` headers.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Response, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter
from litestar.types import ControllerRouterHandler

from central.galleries.schemas import (
    ChangesRead,
    GalleryCreate,
    GalleryPage,
    GalleryRead,
    GalleryUpdate,
    MemberPage,
    MembershipRead,
    SnapshotRead,
)
from central.galleries.service import GalleryService
from central.galleries.snapshots import SNAPSHOT_MEDIA_TYPE
from central.principal import Principal, Scope
from central.schemas import PageLimit

TAGS = ["galleries"]


@post("/galleries", opt={"scope": Scope.OPERATOR}, tags=TAGS)
async def create_gallery(
    data: JSONBody[GalleryCreate],
    principal: NamedDependency[Principal],
    galleries: NamedDependency[GalleryService],
) -> GalleryRead:
    """Create a gallery at version 0 (empty). A site-restricted key may only scope it to its sites."""
    return await galleries.create(principal, data)


@get("/galleries", opt={"scope": Scope.VIEWER}, tags=TAGS)
async def list_galleries(
    principal: NamedDependency[Principal],
    galleries: NamedDependency[GalleryService],
    after: FromQuery[str] = "",
    limit: PageLimit = 100,
    site: FromQuery[str | None] = None,
) -> GalleryPage:
    """The galleries this key may see, by id; `site` keeps those scoped to that site."""
    return await galleries.list_galleries(principal, after, limit, site)


@get("/galleries/{gallery_id:str}", opt={"scope": Scope.VIEWER}, tags=TAGS)
async def get_gallery(
    gallery_id: FromPath[str],
    principal: NamedDependency[Principal],
    galleries: NamedDependency[GalleryService],
) -> GalleryRead:
    return await galleries.get(principal, gallery_id)


@patch("/galleries/{gallery_id:str}", opt={"scope": Scope.OPERATOR}, tags=TAGS)
async def update_gallery(
    gallery_id: FromPath[str],
    data: JSONBody[GalleryUpdate],
    principal: NamedDependency[Principal],
    galleries: NamedDependency[GalleryService],
) -> GalleryRead:
    """Rename and/or rescope; a new scope appends a version `{"sites": [...]}` in the same transaction."""
    return await galleries.update(principal, gallery_id, data)


@delete("/galleries/{gallery_id:str}", opt={"scope": Scope.ADMIN}, tags=TAGS)
async def delete_gallery(
    gallery_id: FromPath[str],
    principal: NamedDependency[Principal],
    galleries: NamedDependency[GalleryService],
) -> None:
    """Delete the gallery, its log and snapshot rows; then its snapshot objects (best effort, logged)."""
    await galleries.delete(principal, gallery_id)


@put("/galleries/{gallery_id:str}/people/{person_id:uuid}", opt={"scope": Scope.OPERATOR}, tags=TAGS)
async def add_member(
    gallery_id: FromPath[str],
    person_id: FromPath[UUID],
    principal: NamedDependency[Principal],
    galleries: NamedDependency[GalleryService],
) -> MembershipRead:
    """Add a person: one version upserting their templates of the gallery's model. Idempotent: adding
    a member again appends nothing (`version` null)."""
    return await galleries.add_member(principal, gallery_id, person_id)


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
    galleries: NamedDependency[GalleryService],
) -> MembershipRead:
    """Remove a person: one version with `deleted_people: [person]`; 404 if they are not a member."""
    return await galleries.remove_member(principal, gallery_id, person_id)


@get("/galleries/{gallery_id:str}/people", opt={"scope": Scope.VIEWER}, tags=TAGS)
async def list_members(
    gallery_id: FromPath[str],
    principal: NamedDependency[Principal],
    galleries: NamedDependency[GalleryService],
    after: FromQuery[UUID | None] = None,
    limit: PageLimit = 100,
) -> MemberPage:
    """Members by person id; pass `next` as `?after=` for the following page."""
    return await galleries.members(principal, gallery_id, after, limit)


@get(
    "/galleries/{gallery_id:str}/changes",
    opt={"scope": Scope.EDGE, "key_scope": Scope.OPERATOR},
    tags=TAGS,
)
async def list_changes(
    gallery_id: FromPath[str],
    principal: NamedDependency[Principal],
    galleries: NamedDependency[GalleryService],
    after: Annotated[int, QueryParameter(ge=0, le=2**62, description="versions after this one")] = 0,
    limit: PageLimit = 100,
) -> ChangesRead:
    """The version log after `after`, oldest first: each version's time and change counts. Edges (of
    the gallery's sites) and viewer keys may read it."""
    return await galleries.changes(principal, gallery_id, after, limit)


@get(
    "/galleries/{gallery_id:str}/snapshot",
    opt={"scope": Scope.EDGE, "key_scope": Scope.OPERATOR},
    tags=TAGS,
    media_type=SNAPSHOT_MEDIA_TYPE,
)
async def snapshot(
    gallery_id: FromPath[str],
    principal: NamedDependency[Principal],
    galleries: NamedDependency[GalleryService],
    version: Annotated[
        int | None, QueryParameter(ge=0, le=2**62, description="default: the current version")
    ] = None,
    if_none_match: Annotated[str | None, HeaderParameter(name="If-None-Match")] = None,
) -> Response[bytes]:
    """The snapshot file of `version` (MessagePack, "facegate.gallery-snapshot/1.1"). 410 when that
    version was never stored and its templates were deleted since: fetch the current version.
    For edges and operator or admin keys: a snapshot holds templates (biometric data), which viewers
    may not take away."""
    found = await galleries.snapshot(principal, gallery_id, version)
    headers = {
        "X-Facegate-Sha256": found.info.sha256,
        "X-Facegate-Version": str(found.info.version),
        "ETag": f'"{found.info.sha256}"',
        "Cache-Control": "private, max-age=0",
    }
    if if_none_match is not None and found.info.sha256 in if_none_match:
        return Response(b"", status_code=304, headers=headers, media_type=SNAPSHOT_MEDIA_TYPE)
    return Response(found.data, headers=headers, media_type=SNAPSHOT_MEDIA_TYPE)


@post("/galleries/{gallery_id:str}/snapshots", opt={"scope": Scope.OPERATOR}, tags=TAGS, status_code=200)
async def build_snapshot_now(
    gallery_id: FromPath[str],
    principal: NamedDependency[Principal],
    galleries: NamedDependency[GalleryService],
) -> SnapshotRead:
    """Build and store the snapshot of the current version now (or return the stored one): what the
    gallery manifest publishes."""
    return await galleries.build_snapshot_now(principal, gallery_id)


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
