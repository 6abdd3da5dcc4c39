"""`/api/v1/edges` and `/api/v1/sites/{site}/edges`: register edges, rotate their credentials, list them.

Registration and rotation return the edge's credentials once (central stores only their hashes);
reads never return them. Writes need an admin key allowed on the site, reads a viewer key.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
import msgspec
from litestar import delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from psycopg import AsyncConnection

from central import audit
from central.auth.scopes import Principal, Scope, require
from central.errors import Conflict, NotFound
from central.events.cursor import decode_cursor, encode_cursor
from central.fleet import repository as repo
from central.fleet.credentials import IssuedCredentials, issue_credentials
from central.fleet.schemas import EdgeCreate, EdgeCredentials, EdgeRead, EdgeRegistered, EdgeStatus
from central.runtime import Runtime

PREFIX_ATTEMPTS = 3


class EdgePage(msgspec.Struct, frozen=True):
    items: list[EdgeRead]
    next: str | None = None
    """Pass as `cursor` for the next page; null on the last page."""


@get("/edges", opt={"scope": Scope.VIEWER}, tags=["fleet"])
async def list_edges(
    *,
    principal: NamedDependency[Principal],
    runtime: NamedDependency[Runtime],
    site: Annotated[str | None, QueryParameter(description="only this site's edges")] = None,
    status: Annotated[EdgeStatus | None, QueryParameter(description="online or offline")] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, QueryParameter(description="`next` of the previous page")] = None,
) -> EdgePage:
    """Edges by (site, id) with their last reported status; restricted keys see their sites' edges."""
    if site is not None:
        require(principal, Scope.VIEWER, site)
    sites = [site] if site is not None else (list(principal.sites) or None)
    after = decode_cursor(cursor, 2) if cursor else None
    async with runtime.pool.connection() as conn:
        rows = await repo.list_edges(conn, sites, status, (after[0], after[1]) if after else None, limit + 1)
    more = len(rows) > limit
    items = rows[:limit]
    return EdgePage(items, encode_cursor(items[-1].site, items[-1].id) if more else None)


@get("/sites/{site:str}/edges/{edge:str}", opt={"scope": Scope.VIEWER}, tags=["fleet"])
async def get_edge(
    site: FromPath[str],
    edge: FromPath[str],
    principal: NamedDependency[Principal],
    runtime: NamedDependency[Runtime],
) -> EdgeRead:
    require(principal, Scope.VIEWER, site)
    async with runtime.pool.connection() as conn:
        found = await repo.get_edge(conn, site, edge)
    if found is None:
        raise NotFound(f"no edge {edge!r} in site {site!r}")
    return found


@post("/sites/{site:str}/edges", opt={"scope": Scope.ADMIN}, tags=["fleet"])
async def register_edge(
    site: FromPath[str],
    data: JSONBody[EdgeCreate],
    principal: NamedDependency[Principal],
    runtime: NamedDependency[Runtime],
) -> EdgeRegistered:
    """Register an edge; the response holds its broker and API credentials, this once. 409 when the site
    already has an edge with this id, 404 when the site does not exist."""
    require(principal, Scope.ADMIN, site)
    async with runtime.pool.connection() as conn:
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
    runtime: NamedDependency[Runtime],
) -> EdgeCredentials:
    """New broker password and API credential for the edge, shown once; the old ones stop working (the
    API credential within FACEGATE_KEY_CACHE_S on other replicas, the broker login once the broker's
    password file is rewritten)."""
    require(principal, Scope.ADMIN, site)
    async with runtime.pool.connection() as conn:
        issued = await _fresh_credentials(conn)
        updated = await repo.replace_credentials(conn, site, edge, issued)
        if updated is None:
            raise NotFound(f"no edge {edge!r} in site {site!r}")
        await audit.record(conn, principal, "edge.rotate_credentials", "edge", f"{site}/{edge}")
    runtime.authenticator.forget()
    return _credentials(updated, issued)


@delete("/sites/{site:str}/edges/{edge:str}", opt={"scope": Scope.ADMIN}, tags=["fleet"], status_code=200)
async def delete_edge(
    site: FromPath[str],
    edge: FromPath[str],
    principal: NamedDependency[Principal],
    runtime: NamedDependency[Runtime],
) -> EdgeRead:
    """Remove the edge and its credentials; its past events stay."""
    require(principal, Scope.ADMIN, site)
    async with runtime.pool.connection() as conn:
        deleted = await repo.delete_edge(conn, site, edge)
        if deleted is None:
            raise NotFound(f"no edge {edge!r} in site {site!r}")
        await audit.record(conn, principal, "edge.delete", "edge", f"{site}/{edge}")
    runtime.authenticator.forget()
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
