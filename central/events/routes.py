"""HTTP routes of this package (mounted under /api/v1 by central/app.py): event listing and detail, and
a person's last sighting. Viewer keys and up; a site-restricted key sees only its sites' events."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import anyio.to_thread
from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.types import ControllerRouterHandler

from central.auth.scopes import Principal, Scope, require
from central.errors import InvalidInput, NotFound
from central.events import repository as repo
from central.events.cursor import decode_event_cursor, encode_event_cursor
from central.events.schemas import EventDetail, EventPage, LastSeenRead, event_detail, event_read
from central.runtime import Runtime


@get("/events", opt={"scope": Scope.VIEWER}, tags=["events"])
async def list_events(
    *,
    principal: NamedDependency[Principal],
    runtime: NamedDependency[Runtime],
    site: Annotated[str | None, QueryParameter(description="only this site")] = None,
    edge: Annotated[str | None, QueryParameter(description="only this edge (of `site`)")] = None,
    camera: Annotated[str | None, QueryParameter(description="only this camera")] = None,
    person_id: Annotated[UUID | None, QueryParameter(description="only this person")] = None,
    unknown: Annotated[bool | None, QueryParameter(description="true: unknown faces only")] = None,
    since: Annotated[datetime | None, QueryParameter(description="RFC 3339, inclusive")] = None,
    until: Annotated[datetime | None, QueryParameter(description="RFC 3339, exclusive")] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, QueryParameter(description="`next` of the previous page")] = None,
) -> EventPage:
    """Events newest first (ties by id), filtered; follow `next` for older pages."""
    sites = visible_sites(principal, site)
    if edge is not None and sites is None:
        raise InvalidInput("edge ids are unique only within a site: pass `site` together with `edge`")
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and moment.tzinfo is None:
            raise InvalidInput(f"{name} needs a UTC offset (RFC 3339), e.g. 2026-01-31T12:00:00Z")
    if since is not None and until is not None and since >= until:
        raise InvalidInput("since must be earlier than until")
    query = repo.EventQuery(
        sites=sites,
        edge=edge,
        camera=camera,
        person_id=person_id,
        unknown=unknown,
        since=since,
        until=until,
        after=decode_event_cursor(cursor) if cursor else None,
        limit=limit + 1,
    )
    async with runtime.pool.connection() as conn:
        rows = await repo.list_events(conn, query)
    items = rows[:limit]
    more = len(rows) > limit
    return EventPage(
        [event_read(e) for e in items], encode_event_cursor(items[-1].ts, items[-1].id) if more else None
    )


@get("/events/{event_id:uuid}", opt={"scope": Scope.VIEWER}, tags=["events"])
async def get_event(
    event_id: FromPath[UUID], principal: NamedDependency[Principal], runtime: NamedDependency[Runtime]
) -> EventDetail:
    """One event, with a presigned URL of its face crop when it has one (valid FACEGATE_PRESIGN_TTL_S)."""
    async with runtime.pool.connection() as conn:
        event = await repo.get_event(conn, event_id)
    if event is None:
        raise NotFound(f"no event {event_id}")
    require(principal, Scope.VIEWER, event.site_id)
    if event.crop_key is None or event.erased_at is not None:
        return event_detail(event, None, None)
    ttl = runtime.settings.presign_ttl_s
    url = await anyio.to_thread.run_sync(runtime.store.presigned_get, event.crop_key, ttl)
    return event_detail(event, url, ttl)


@get("/people/{person_id:uuid}/last-seen", opt={"scope": Scope.VIEWER}, tags=["events"])
async def last_seen(
    person_id: FromPath[UUID], principal: NamedDependency[Principal], runtime: NamedDependency[Runtime]
) -> LastSeenRead:
    """Where and when the person was last recognised (in the key's sites); 404 `never_seen` otherwise.
    Erased events do not count."""
    async with runtime.pool.connection() as conn:
        event = await repo.last_seen(conn, person_id, principal.sites or None)
    if event is None:
        raise NotFound(f"person {person_id} has no events in the sites this key may see", code="never_seen")
    return LastSeenRead(event.ts, event.site_id, event.edge_id, event.camera, event.id)


def visible_sites(principal: Principal, site: str | None) -> tuple[str, ...] | None:
    """The sites a listing may cover: `site` if given (403 if the key may not see it), else the key's
    sites (None: every site)."""
    if site is not None:
        require(principal, Scope.VIEWER, site)
        return (site,)
    return principal.sites or None


ROUTES: list[ControllerRouterHandler] = [list_events, get_event, last_seen]
