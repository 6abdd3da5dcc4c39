"""The fleet service: sites and their edges, with the edges' credentials.

Sites: viewers read (restricted keys only their sites), admins create, rename and delete. Edges:
registration and rotation return the edge's credentials once (central stores only their hashes); reads
never return them. Writes need an admin key allowed on the site, reads a viewer key. Every write is
audited in its own transaction; a credential change or an edge's deletion drops the cache of verified
credentials at once (the auth service's `forget`).
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import msgspec
from psycopg import AsyncConnection

from central import audit
from central.auth.service import AuthService
from central.cursors import decode_cursor, encode_cursor
from central.db.pool import AsyncPool
from central.errors import Conflict, InvalidInput, NotFound
from central.fleet import repository as repo
from central.fleet.credentials import IssuedCredentials, issue_credentials
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
from central.principal import Principal, Scope, require
from central.schemas import check_time_zone

PREFIX_ATTEMPTS = 3
RESERVED_SITE_IDS = frozenset({"galleries"})
"""`facegate/v1/galleries/...` are the gallery topics, so no site may be called that."""


class FleetService:
    """Sites and edges of one app; `auth` forgets rotated or deleted edge credentials."""

    def __init__(self, pool: AsyncPool, auth: AuthService) -> None:
        self.pool = pool
        self.auth = auth

    # --- sites ------------------------------------------------------------------------------------------

    async def list_sites(self, principal: Principal) -> list[SiteRead]:
        """Every site `principal` may see, by id, with its number of edges."""
        async with self.pool.connection() as conn:
            return await repo.list_sites(conn, principal.sites or None)

    async def create_site(self, principal: Principal, data: SiteCreate) -> SiteRead:
        """Create a site (unrestricted admin keys only); Conflict `site_exists` when the id is taken."""
        require(principal, Scope.ADMIN, None)
        if data.id in RESERVED_SITE_IDS:
            raise InvalidInput(f"site id {data.id!r} is reserved (gallery topics use it); choose another id")
        async with self.pool.connection() as conn:
            site = await repo.create_site(conn, data.id, data.name, check_time_zone(data.time_zone))
            if site is None:
                raise Conflict(f"site {data.id!r} already exists", code="site_exists")
            await audit.record(conn, principal, "site.create", "site", data.id, details={"name": data.name})
        return site

    async def get_site(self, principal: Principal, site: str) -> SiteRead:
        require(principal, Scope.VIEWER, site)
        async with self.pool.connection() as conn:
            found = await repo.get_site(conn, site)
        if found is None:
            raise NotFound(f"no site {site!r}")
        return found

    async def rename_site(self, principal: Principal, site: str, data: SiteUpdate) -> SiteRead:
        require(principal, Scope.ADMIN, site)
        async with self.pool.connection() as conn:
            zone = check_time_zone(data.time_zone) if data.time_zone is not None else None
            found = await repo.rename_site(conn, site, data.name, zone)
            if found is None:
                raise NotFound(f"no site {site!r}")
            await audit.record(
                conn, principal, "site.update", "site", site, details=msgspec.structs.asdict(data)
            )
        return found

    async def delete_site(self, principal: Principal, site: str) -> SiteRead:
        """Delete a site (unrestricted admin keys only); Conflict `site_in_use` while anything uses it."""
        require(principal, Scope.ADMIN, None)
        async with self.pool.connection() as conn:
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

    # --- edges ------------------------------------------------------------------------------------------

    async def list_edges(
        self,
        principal: Principal,
        site: str | None,
        status: EdgeStatus | None,
        limit: int,
        cursor: str | None,
    ) -> EdgePage:
        """Edges by (site, id); restricted keys see their sites' edges."""
        if site is not None:
            require(principal, Scope.VIEWER, site)
        sites = [site] if site is not None else (list(principal.sites) or None)
        after = decode_cursor(cursor, 2) if cursor else None
        async with self.pool.connection() as conn:
            rows = await repo.list_edges(
                conn, sites, status, (after[0], after[1]) if after else None, limit + 1
            )
        more = len(rows) > limit
        items = rows[:limit]
        return EdgePage(items, encode_cursor(items[-1].site, items[-1].id) if more else None)

    async def get_edge(self, principal: Principal, site: str, edge: str) -> EdgeRead:
        require(principal, Scope.VIEWER, site)
        async with self.pool.connection() as conn:
            found = await repo.get_edge(conn, site, edge)
        if found is None:
            raise NotFound(f"no edge {edge!r} in site {site!r}")
        return found

    async def register_edge(self, principal: Principal, site: str, data: EdgeCreate) -> EdgeRegistered:
        """Register an edge with new credentials (returned this once); NotFound without the site,
        Conflict `edge_exists` when the site has an edge with this id."""
        require(principal, Scope.ADMIN, site)
        async with self.pool.connection() as conn:
            if await repo.get_site(conn, site) is None:
                raise NotFound(f"no site {site!r}: create it first (POST /api/v1/sites)")
            issued = await _fresh_credentials(conn)
            created = await repo.insert_edge(conn, site, data.id, data.name, issued)
            if created is None:
                raise Conflict(
                    f"site {site!r} already has an edge {data.id!r}; to issue it new credentials use "
                    f"POST /api/v1/sites/{site}/edges/{data.id}/credentials",
                    code="edge_exists",
                )
            await audit.record(
                conn, principal, "edge.register", "edge", f"{site}/{data.id}", details={"name": data.name}
            )
        return EdgeRegistered(created, _credentials(created, issued))

    async def rotate_credentials(self, principal: Principal, site: str, edge: str) -> EdgeCredentials:
        """New broker password and API credential for the edge, shown once; the old ones stop working."""
        require(principal, Scope.ADMIN, site)
        async with self.pool.connection() as conn:
            issued = await _fresh_credentials(conn)
            updated = await repo.replace_credentials(conn, site, edge, issued)
            if updated is None:
                raise NotFound(f"no edge {edge!r} in site {site!r}")
            await audit.record(conn, principal, "edge.rotate_credentials", "edge", f"{site}/{edge}")
        self.auth.forget()
        return _credentials(updated, issued)

    async def delete_edge(self, principal: Principal, site: str, edge: str) -> EdgeRead:
        """Remove the edge and its credentials; its past events stay."""
        require(principal, Scope.ADMIN, site)
        async with self.pool.connection() as conn:
            deleted = await repo.delete_edge(conn, site, edge)
            if deleted is None:
                raise NotFound(f"no edge {edge!r} in site {site!r}")
            await audit.record(conn, principal, "edge.delete", "edge", f"{site}/{edge}")
        self.auth.forget()
        return deleted


async def _fresh_credentials(conn: AsyncConnection[Any]) -> IssuedCredentials:
    """New credentials whose API prefix no key or edge uses (one lookup serves both kinds)."""
    for _ in range(PREFIX_ATTEMPTS):
        issued = await anyio.to_thread.run_sync(issue_credentials)
        if not await repo.prefix_taken(conn, issued.api_key.prefix):
            return issued
    raise Conflict("could not draw an unused credential prefix; retry the request")


def _credentials(edge: EdgeRead, issued: IssuedCredentials) -> EdgeCredentials:
    return EdgeCredentials(
        broker_username=edge.broker_username,
        broker_password=issued.broker_password,
        api_key=issued.api_key.display,
        topic_prefix=edge.topic_prefix,
    )
