"""Live events and their history: filters (site, camera, person, unknown only, time range), keyset pages
as the API's, and one event's crop beside the person's enrolled photos. New events arrive over the
console's WebSocket (central/console/live.py) while the first page is shown."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath, Parameter
from litestar.response import Redirect, Template

from central.console.rendering import page, principal_of
from central.corrections.service import CorrectionService
from central.errors import InvalidInput, NotFound
from central.events.schemas import EventRead
from central.events.service import EventService
from central.people.schemas import PhotoRead
from central.people.service import PeopleService

PAGE_SIZE = 50
Text = Annotated[str | None, Parameter(max_length=200)]


def _moment(name: str, value: str | None) -> datetime | None:
    """A time from a `datetime-local` field (taken as UTC) or RFC 3339."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as err:
        raise InvalidInput(f"{name}: expected a date and time such as 2026-01-31T12:00") from err
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def with_names(people: PeopleService, events: list[EventRead]) -> list[tuple[EventRead, str | None]]:
    """Each event with the name of who it recognised (None: unknown, or erased since)."""
    names = await people.names(list({e.person_id for e in events if e.person_id is not None}))
    return [(e, names.get(e.person_id) if e.person_id else None) for e in events]


@get("/events")
async def events_page(  # noqa: PLR0917 - one parameter per filter of the page
    request: Request[Any, Any, Any],
    events: NamedDependency[EventService],
    people: NamedDependency[PeopleService],
    site: Text = None,
    camera: Text = None,
    person: Text = None,
    unknown: Text = None,
    since: Text = None,
    until: Text = None,
    cursor: Annotated[str | None, Parameter(max_length=500)] = None,
) -> Template:
    """The newest events matching the filters; live while on the first page without a time range."""
    principal = principal_of(request)
    person_id = None
    if person:
        try:
            person_id = UUID(person)
        except ValueError as err:
            raise InvalidInput("person: expected a person id (pick one from the People page)") from err
    listing = await events.list_events(
        principal,
        site=site or None,
        edge=None,
        camera=camera or None,
        person_id=person_id,
        unknown=True if unknown else None,
        since=_moment("since", since),
        until=_moment("until", until),
        limit=PAGE_SIZE,
        cursor=cursor or None,
    )
    filters = {
        "site": site,
        "camera": camera,
        "person": person,
        "unknown": unknown,
        "since": since,
        "until": until,
    }
    kept = {k: v for k, v in filters.items() if v}
    live = {k: v for k, v in kept.items() if k in {"site", "camera", "person", "unknown"}}
    return page(
        request,
        "events",
        rows=await with_names(people, listing.items),
        filters=filters,
        older=f"/console/events?{urlencode({**kept, 'cursor': listing.next})}" if listing.next else None,
        live_url=None if cursor or since or until else f"/console/live?{urlencode(live)}",
    )


@get("/events/{event_id:uuid}")
async def event_page(
    request: Request[Any, Any, Any],
    event_id: FromPath[UUID],
    events: NamedDependency[EventService],
    people: NamedDependency[PeopleService],
    corrections: NamedDependency[CorrectionService],
) -> Template:
    """One event: its crop beside the enrolled photos of who it recognised, its corrections and the
    forms to correct it (docs/operator-loop.md)."""
    principal = principal_of(request)
    event = await events.get(principal, event_id)
    photos: list[PhotoRead] = []
    name = None
    if event.person_id is not None:
        try:
            photos = await people.photos(event.person_id, principal)
            name = (await people.names([event.person_id])).get(event.person_id)
        except NotFound:
            photos = []  # erased since
    made = (await corrections.list_for(principal, event_id)).items
    now = made[-1].person_id if made else event.person_id
    names = await people.names(
        [p for p in {now, *(c.person_id for c in made), *(c.wrong_person_id for c in made)} if p]
    )
    return page(
        request, "event", event=event, name=name, photos=photos, corrections=made, now=now, names=names
    )


@get("/events/{event_id:uuid}/crop")
async def event_crop(
    request: Request[Any, Any, Any], event_id: FromPath[UUID], events: NamedDependency[EventService]
) -> Redirect:
    """The event's face crop: a redirect to its presigned URL (404 without one)."""
    event = await events.get(principal_of(request), event_id)
    if event.crop_url is None:
        raise NotFound(f"event {event_id} has no crop", code="no_crop")
    return Redirect(event.crop_url, status_code=302)


ROUTES = [events_page, event_page, event_crop]
