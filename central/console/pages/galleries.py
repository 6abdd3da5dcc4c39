"""Galleries: the list, and one gallery's version log, members and which edge holds which version, with
a button that resyncs an edge (admins)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template

from central.console.rendering import page, principal_of, see_other
from central.distribution.service import DistributionService
from central.fleet.service import FleetService
from central.galleries.service import GalleryService

LOG_SIZE = 50
MEMBERS = 200
MAX_EDGES = 500


@get("/galleries")
async def galleries_page(
    request: Request[Any, Any, Any], galleries: NamedDependency[GalleryService]
) -> Template:
    listing = await galleries.list_galleries(principal_of(request), "", 500, None)
    return page(request, "galleries", galleries=listing.items)


@get("/galleries/{gallery_id:str}")
async def gallery_page(
    request: Request[Any, Any, Any],
    gallery_id: FromPath[str],
    galleries: NamedDependency[GalleryService],
    fleet: NamedDependency[FleetService],
) -> Template:
    principal = principal_of(request)
    gallery = await galleries.get(principal, gallery_id)
    log = await galleries.changes(principal, gallery.id, max(0, gallery.current_version - LOG_SIZE), LOG_SIZE)
    members = await galleries.members(principal, gallery.id, None, MEMBERS)
    sites = [s for s in gallery.sites if principal.allows_site(s)] if gallery.sites else [None]
    edges = []
    for site in sites:
        for edge in (await fleet.list_edges(principal, site, None, MAX_EDGES, None)).items:
            edges.append((edge, edge.gallery_versions.get(gallery.id)))
    return page(
        request,
        "gallery",
        gallery=gallery,
        log=list(reversed(log.items)),
        members=members.items,
        more_members=members.next is not None,
        edges=edges,
    )


@post("/galleries/{gallery_id:str}/resync/{site:str}/{edge:str}")
async def resync(  # noqa: PLR0917 - the path parameters and the services
    request: Request[Any, Any, Any],
    gallery_id: FromPath[str],
    site: FromPath[str],
    edge: FromPath[str],
    galleries: NamedDependency[GalleryService],
    distribution: NamedDependency[DistributionService],
) -> Redirect:
    principal = principal_of(request)
    gallery = await galleries.get(principal, gallery_id)
    await distribution.resync_edge(principal, site, edge, gallery.id)
    return see_other(f"/console/galleries/{gallery.id}?resynced={site}/{edge}")


ROUTES = [galleries_page, gallery_page, resync]
