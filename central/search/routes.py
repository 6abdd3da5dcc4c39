"""`POST /api/v1/search`: who and where is the face of this photo (operators; audited). The rules are in
central/search/service.py."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import post
from litestar.di import NamedDependency
from litestar.params import MultipartBody, QueryParameter
from litestar.types import ControllerRouterHandler

from central.enrollment.routes import read_limited, require_multipart, upload_files
from central.principal import Principal, Scope
from central.search.schemas import SearchResult
from central.search.service import SearchService


@post(
    "/search",
    opt={"scope": Scope.OPERATOR},
    tags=["search"],
    status_code=200,
    before_request=require_multipart,
)
async def search(
    *,
    data: MultipartBody[dict[str, Any]],
    principal: NamedDependency[Principal],
    search: NamedDependency[SearchService],
    site: Annotated[str | None, QueryParameter(max_length=64, description="only events of this site")] = None,
    top_people: Annotated[int, QueryParameter(ge=1, le=50, description="best people returned")] = 5,
    top_events: Annotated[int, QueryParameter(ge=1, le=500, description="best events returned")] = 50,
    threshold: Annotated[
        float | None, QueryParameter(ge=-1.0, le=1.0, description="default: the model's")
    ] = None,
) -> SearchResult:
    """A photo with one face (one file part, e.g. `photo`): the best-matching people with scores, and
    the events whose faces match (time, site, camera), best first."""
    search.require_searcher(principal, site)
    (upload,) = upload_files(data, 1)
    photo = await read_limited(upload, search.enrollment.settings.max_photo_bytes)
    return await search.search(
        principal, photo, site=site, people=top_people, events=top_events, threshold=threshold
    )


PHOTO_ROUTES: list[ControllerRouterHandler] = [search]
