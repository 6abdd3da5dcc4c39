"""The events service: listing (keyset pages, newest first), one event with its crop's URL, and a
person's last sighting. Viewer keys and up; a site-restricted key sees only its sites' events. Ingest
writes events itself (central/ingest/)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import anyio.to_thread

from central.cursors import decode_event_cursor, encode_event_cursor
from central.db.pool import AsyncPool
from central.errors import InvalidInput, NotFound
from central.events import repository as repo
from central.events.schemas import EventDetail, EventPage, LastSeenRead, event_detail, event_read
from central.principal import Principal, Scope, require, require_scope
from central.storage import ObjectStore


class EventService:
    """The events of one app. `presign_ttl_s`: how long crop URLs stay valid."""

    def __init__(self, pool: AsyncPool, store: ObjectStore, *, presign_ttl_s: int) -> None:
        self.pool = pool
        self.store = store
        self.presign_ttl_s = presign_ttl_s

    async def list_events(  # one argument per filter of the listing
        self,
        principal: Principal,
        *,
        site: str | None,
        edge: str | None,
        camera: str | None,
        person_id: UUID | None,
        unknown: bool | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        cursor: str | None,
    ) -> EventPage:
        """Events newest first (ties by id), filtered; `next` continues with older ones."""
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
        async with self.pool.connection() as conn:
            rows = await repo.list_events(conn, query)
        items = rows[:limit]
        more = len(rows) > limit
        return EventPage(
            [event_read(e) for e in items], encode_event_cursor(items[-1].ts, items[-1].id) if more else None
        )

    async def get(self, principal: Principal, event_id: UUID) -> EventDetail:
        """One event, with a presigned URL of its face crop when it has one."""
        async with self.pool.connection() as conn:
            event = await repo.get_event(conn, event_id)
        if event is None:
            raise NotFound(f"no event {event_id}")
        require(principal, Scope.VIEWER, event.site_id)
        if event.crop_key is None or event.erased_at is not None:
            return event_detail(event, None, None)
        ttl = self.presign_ttl_s
        url = await anyio.to_thread.run_sync(self.store.presigned_get, event.crop_key, ttl)
        return event_detail(event, url, ttl)

    async def last_seen(self, principal: Principal, person_id: UUID) -> LastSeenRead:
        """Where and when the person was last recognised in the sites `principal` may see."""
        async with self.pool.connection() as conn:
            event = await repo.last_seen(conn, person_id, principal.sites or None)
        if event is None:
            raise NotFound(
                f"person {person_id} has no events in the sites this key may see", code="never_seen"
            )
        return LastSeenRead(event.ts, event.site_id, event.edge_id, event.camera, event.id)

    async def last_seen_per_site(self, principal: Principal, person_id: UUID) -> list[LastSeenRead]:
        """Where the person was last recognised at each site `principal` may see, by site."""
        require_scope(principal, Scope.VIEWER)
        async with self.pool.connection() as conn:
            rows = await repo.last_seen_per_site(conn, person_id, principal.sites or None)
        return [LastSeenRead(ts, site, edge, camera, event_id) for site, ts, edge, camera, event_id in rows]

    async def hourly(self, principal: Principal, hours: int) -> list[tuple[str, datetime, int]]:
        """Events per hour per site over the last `hours` hours, in the sites `principal` may see."""
        require_scope(principal, Scope.VIEWER)
        since = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
        async with self.pool.connection() as conn:
            return await repo.hourly_counts(conn, principal.sites or None, since)


def visible_sites(principal: Principal, site: str | None) -> tuple[str, ...] | None:
    """The sites a listing may cover: `site` if given (403 if the key may not see it), else the key's
    sites (None: every site)."""
    if site is not None:
        require(principal, Scope.VIEWER, site)
        return (site,)
    return principal.sites or None
