"""`/api/v1/galleries/{id}/snapshot(s)`: download a gallery snapshot, or build and store the current one.

Edges download with their edge credential (galleries of their site only); API keys of viewer scope
and above may download the galleries they see. The body is the MessagePack file itself
(central/galleries/snapshots.py) with `X-Facegate-Sha256`, `X-Facegate-Version` and `ETag` headers.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, HeaderParameter, QueryParameter

from central.auth.scopes import Principal, Scope
from central.galleries import repository as repo
from central.galleries.access import require_change, require_visible
from central.galleries.schemas import SnapshotRead
from central.galleries.snapshots import SNAPSHOT_MEDIA_TYPE, snapshot_file
from central.runtime import Runtime

TAGS = ["galleries"]


@get(
    "/galleries/{gallery_id:str}/snapshot",
    opt={"scope": Scope.EDGE, "key_scope": Scope.VIEWER},
    tags=TAGS,
    media_type=SNAPSHOT_MEDIA_TYPE,
)
async def snapshot(
    gallery_id: FromPath[str],
    principal: NamedDependency[Principal],
    runtime: NamedDependency[Runtime],
    version: Annotated[int | None, QueryParameter(ge=0, description="default: the current version")] = None,
    if_none_match: Annotated[str | None, HeaderParameter(name="If-None-Match")] = None,
) -> Response[bytes]:
    """The snapshot file of `version` (MessagePack, "facegate.gallery-snapshot/1"). 410 when that
    version was never stored and its templates were deleted since: fetch the current version."""
    async with runtime.pool.connection() as conn:
        gallery = await repo.get_gallery(conn, gallery_id)
    require_visible(principal, gallery.id, gallery.sites)
    wanted = gallery.current_version if version is None else version
    found = await snapshot_file(runtime, gallery, wanted)
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
    gallery_id: FromPath[str], principal: NamedDependency[Principal], runtime: NamedDependency[Runtime]
) -> SnapshotRead:
    """Build and store the snapshot of the current version now (or return the stored one): what the
    gallery manifest publishes."""
    async with runtime.pool.connection() as conn:
        gallery = await repo.get_gallery(conn, gallery_id)
    require_change(principal, Scope.OPERATOR, gallery.sites)
    found = await snapshot_file(runtime, gallery, gallery.current_version)
    return found.info
