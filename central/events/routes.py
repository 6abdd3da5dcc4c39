"""HTTP routes of this package (mounted under /api/v1 by central/app.py): event listing and detail, and
a person's last sighting. Viewer keys and up; a site-restricted key sees only its sites' events. The
rules are in central/events/service.py."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.types import ControllerRouterHandler

from central.events.schemas import EventDetail, EventPage, LastSeenRead
from central.events.service import EventService
from central.principal import Principal, Scope


@get("/events", opt={"scope": Scope.VIEWER}, tags=["events"])
async def list_events(
    *,
    principal: NamedDependency[Principal],
    events: NamedDependency[EventService],
    site: Annotated[str | None, QueryParameter(max_length=64, description="only this site")] = None,
    edge: Annotated[str | None, QueryParameter(max_length=64, description="only this edge of `site`")] = None,
    camera: Annotated[str | None, QueryParameter(max_length=200, description="only this camera")] = None,
    person_id: Annotated[UUID | None, QueryParameter(description="only this person")] = None,
    unknown: Annotated[bool | None, QueryParameter(description="true: unknown faces only")] = None,
    since: Annotated[datetime | None, QueryParameter(description="RFC 3339, inclusive")] = None,
    until: Annotated[datetime | None, QueryParameter(description="RFC 3339, exclusive")] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, QueryParameter(description="`next` of the previous page")] = None,
) -> EventPage:
    """Events newest first (ties by id), filtered; follow `next` for older pages."""
    return await events.list_events(
        principal,
        site=site,
        edge=edge,
        camera=camera,
        person_id=person_id,
        unknown=unknown,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )


@get("/events/{event_id:uuid}", opt={"scope": Scope.VIEWER}, tags=["events"])
async def get_event(
    event_id: FromPath[UUID], principal: NamedDependency[Principal], events: NamedDependency[EventService]
) -> EventDetail:
    """One event, with a presigned URL of its face crop when it has one (valid FACEGATE_PRESIGN_TTL_S)."""
    return await events.get(principal, event_id)


@get("/people/{person_id:uuid}/last-seen", opt={"scope": Scope.VIEWER}, tags=["events"])
async def last_seen(
    person_id: FromPath[UUID], principal: NamedDependency[Principal], events: NamedDependency[EventService]
) -> LastSeenRead:
    """Where and when the person was last recognised (in the key's sites); 404 `never_seen` otherwise.
    Erased events do not count."""
    return await events.last_seen(principal, person_id)


ROUTES: list[ControllerRouterHandler] = [list_events, get_event, last_seen]
