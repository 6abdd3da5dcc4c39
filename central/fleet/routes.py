"""HTTP routes of this package (mounted under /api/v1 by central/app.py): `/api/v1/sites`, `/api/v1/edges`
and `/api/v1/sites/{site}/edges`. The rules are in central/fleet/service.py."""

from __future__ import annotations

from typing import Annotated

from litestar import delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.types import ControllerRouterHandler

from central.fleet.schemas import (
    EdgeCreate,
    EdgeCredentials,
    EdgePage,
    EdgeRead,
    EdgeRegistered,
    EdgeStatus,
    SiteCreate,
    SiteRead,
    SiteUpdate,
)
from central.fleet.service import FleetService
from central.principal import Principal, Scope

# --- sites ------------------------------------------------------------------------------------------------


@get("/sites", opt={"scope": Scope.VIEWER}, tags=["fleet"])
async def list_sites(
    principal: NamedDependency[Principal], fleet: NamedDependency[FleetService]
) -> list[SiteRead]:
    """Every site the key may see, by id, with its number of edges."""
    return await fleet.list_sites(principal)


@post("/sites", opt={"scope": Scope.ADMIN}, tags=["fleet"])
async def create_site(
    data: JSONBody[SiteCreate], principal: NamedDependency[Principal], fleet: NamedDependency[FleetService]
) -> SiteRead:
    """Create a site (unrestricted admin keys only); 409 when the id is taken."""
    return await fleet.create_site(principal, data)


@get("/sites/{site:str}", opt={"scope": Scope.VIEWER}, tags=["fleet"])
async def get_site(
    site: FromPath[str], principal: NamedDependency[Principal], fleet: NamedDependency[FleetService]
) -> SiteRead:
    return await fleet.get_site(principal, site)


@patch("/sites/{site:str}", opt={"scope": Scope.ADMIN}, tags=["fleet"])
async def rename_site(
    site: FromPath[str],
    data: JSONBody[SiteUpdate],
    principal: NamedDependency[Principal],
    fleet: NamedDependency[FleetService],
) -> SiteRead:
    """Change the site's name (its id is fixed: it is part of every topic of its edges)."""
    return await fleet.rename_site(principal, site, data)


@delete("/sites/{site:str}", opt={"scope": Scope.ADMIN}, tags=["fleet"], status_code=200)
async def delete_site(
    site: FromPath[str], principal: NamedDependency[Principal], fleet: NamedDependency[FleetService]
) -> SiteRead:
    """Delete a site (unrestricted admin keys only). 409 `site_in_use` while edges, galleries scoped to
    it or unrevoked keys restricted to it exist; its past events stay."""
    return await fleet.delete_site(principal, site)


# --- edges ------------------------------------------------------------------------------------------------


@get("/edges", opt={"scope": Scope.VIEWER}, tags=["fleet"])
async def list_edges(
    *,
    principal: NamedDependency[Principal],
    fleet: NamedDependency[FleetService],
    site: Annotated[str | None, QueryParameter(max_length=64, description="only this site's edges")] = None,
    status: Annotated[EdgeStatus | None, QueryParameter(description="online or offline")] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, QueryParameter(description="`next` of the previous page")] = None,
) -> EdgePage:
    """Edges by (site, id) with their last reported status; restricted keys see their sites' edges."""
    return await fleet.list_edges(principal, site, status, limit, cursor)


@get("/sites/{site:str}/edges/{edge:str}", opt={"scope": Scope.VIEWER}, tags=["fleet"])
async def get_edge(
    site: FromPath[str],
    edge: FromPath[str],
    principal: NamedDependency[Principal],
    fleet: NamedDependency[FleetService],
) -> EdgeRead:
    return await fleet.get_edge(principal, site, edge)


@post("/sites/{site:str}/edges", opt={"scope": Scope.ADMIN}, tags=["fleet"])
async def register_edge(
    site: FromPath[str],
    data: JSONBody[EdgeCreate],
    principal: NamedDependency[Principal],
    fleet: NamedDependency[FleetService],
) -> EdgeRegistered:
    """Register an edge; the response holds its broker and API credentials, this once. 409 when the site
    already has an edge with this id, 404 when the site does not exist."""
    return await fleet.register_edge(principal, site, data)


@post(
    "/sites/{site:str}/edges/{edge:str}/credentials",
    opt={"scope": Scope.ADMIN},
    tags=["fleet"],
    status_code=200,
)
async def rotate_credentials(
    site: FromPath[str],
    edge: FromPath[str],
    principal: NamedDependency[Principal],
    fleet: NamedDependency[FleetService],
) -> EdgeCredentials:
    """New broker password and API credential for the edge, shown once; the old ones stop working (the
    API credential within FACEGATE_KEY_CACHE_S on other replicas, the broker login once the broker's
    password file is rewritten)."""
    return await fleet.rotate_credentials(principal, site, edge)


@delete("/sites/{site:str}/edges/{edge:str}", opt={"scope": Scope.ADMIN}, tags=["fleet"], status_code=200)
async def delete_edge(
    site: FromPath[str],
    edge: FromPath[str],
    principal: NamedDependency[Principal],
    fleet: NamedDependency[FleetService],
) -> EdgeRead:
    """Remove the edge and its credentials; its past events stay."""
    return await fleet.delete_edge(principal, site, edge)


ROUTES: list[ControllerRouterHandler] = [
    list_sites,
    create_site,
    get_site,
    rename_site,
    delete_site,
    list_edges,
    get_edge,
    register_edge,
    rotate_credentials,
    delete_edge,
]
