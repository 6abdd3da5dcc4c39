"""`/api/v1/sites`: viewers read (restricted keys only their sites), admins create, rename and delete."""

from __future__ import annotations

from litestar import delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from central import audit
from central.auth.scopes import Principal, Scope, require
from central.errors import Conflict, InvalidInput, NotFound
from central.fleet import repository as repo
from central.fleet.schemas import SiteCreate, SiteRead, SiteUpdate
from central.runtime import Runtime

RESERVED_SITE_IDS = frozenset({"galleries"})
"""`facegate/v1/galleries/...` are the gallery topics, so no site may be called that."""


@get("/sites", opt={"scope": Scope.VIEWER}, tags=["fleet"])
async def list_sites(
    principal: NamedDependency[Principal], runtime: NamedDependency[Runtime]
) -> list[SiteRead]:
    """Every site the key may see, by id, with its number of edges."""
    async with runtime.pool.connection() as conn:
        return await repo.list_sites(conn, principal.sites or None)


@post("/sites", opt={"scope": Scope.ADMIN}, tags=["fleet"])
async def create_site(
    data: JSONBody[SiteCreate], principal: NamedDependency[Principal], runtime: NamedDependency[Runtime]
) -> SiteRead:
    """Create a site (unrestricted admin keys only); 409 when the id is taken."""
    require(principal, Scope.ADMIN, None)
    if data.id in RESERVED_SITE_IDS:
        raise InvalidInput(f"site id {data.id!r} is reserved (gallery topics use it); choose another id")
    async with runtime.pool.connection() as conn:
        site = await repo.create_site(conn, data.id, data.name)
        if site is None:
            raise Conflict(f"site {data.id!r} already exists", code="site_exists")
        await audit.record(conn, principal, "site.create", "site", data.id, details={"name": data.name})
    return site


@get("/sites/{site:str}", opt={"scope": Scope.VIEWER}, tags=["fleet"])
async def get_site(
    site: FromPath[str], principal: NamedDependency[Principal], runtime: NamedDependency[Runtime]
) -> SiteRead:
    require(principal, Scope.VIEWER, site)
    async with runtime.pool.connection() as conn:
        found = await repo.get_site(conn, site)
    if found is None:
        raise NotFound(f"no site {site!r}")
    return found


@patch("/sites/{site:str}", opt={"scope": Scope.ADMIN}, tags=["fleet"])
async def rename_site(
    site: FromPath[str],
    data: JSONBody[SiteUpdate],
    principal: NamedDependency[Principal],
    runtime: NamedDependency[Runtime],
) -> SiteRead:
    """Change the site's name (its id is fixed: it is part of every topic of its edges)."""
    require(principal, Scope.ADMIN, site)
    async with runtime.pool.connection() as conn:
        found = await repo.rename_site(conn, site, data.name)
        if found is None:
            raise NotFound(f"no site {site!r}")
        await audit.record(conn, principal, "site.update", "site", site, details={"name": data.name})
    return found


@delete("/sites/{site:str}", opt={"scope": Scope.ADMIN}, tags=["fleet"], status_code=200)
async def delete_site(
    site: FromPath[str], principal: NamedDependency[Principal], runtime: NamedDependency[Runtime]
) -> SiteRead:
    """Delete a site (unrestricted admin keys only). 409 `site_in_use` while edges, galleries scoped to
    it or unrevoked keys restricted to it exist; its past events stay."""
    require(principal, Scope.ADMIN, None)
    async with runtime.pool.connection() as conn:
        found = await repo.get_site(conn, site, lock=True)
        if found is None:
            raise NotFound(f"no site {site!r}")
        dependents = await repo.site_dependents(conn, site)
        if dependents:
            listed = "; ".join(f"{kind}: {', '.join(ids)}" for kind, ids in dependents.items())
            raise Conflict(
                f"site {site!r} is still in use ({listed}): delete its edges, remove it from the "
                "galleries' sites and revoke the keys restricted to it first",
                code="site_in_use",
                details=dependents,
            )
        await repo.delete_site(conn, site)
        await audit.record(conn, principal, "site.delete", "site", site)
    return found
