"""The outbox side: deliveries written in the transaction that commits the events (ingest's one hook).

For each event stored now (not a duplicate, not a tombstone of an erased person) and not older than
FACEGATE_NOTIFY_MAX_AGE_S by the injected clock, every enabled rule that takes it (who, where, when:
central/watch/matching.py) and whose cooldown for that person (or unknown face) and camera has passed
(one conditional upsert, so replicas agree) gets one delivery row per channel. The rows commit or roll
back with the events: a crash after the commit loses no delivery, a rolled back batch sends none.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from psycopg import AsyncConnection

from central.notify import repository as repo
from central.watch import repository as watch_repo
from central.watch.matching import Rule, Sighting, takes, zone_of

NIL = UUID(int=0)
"""The cooldown key of an unknown face."""


class StoredEvent(Protocol):
    """What of an ingested event a delivery carries (central/ingest/validate.py's IngestEvent)."""

    @property
    def id(self) -> UUID: ...
    @property
    def ts(self) -> datetime: ...
    @property
    def site(self) -> str: ...
    @property
    def edge(self) -> str: ...
    @property
    def camera(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def person_id(self) -> UUID | None: ...
    @property
    def score(self) -> float: ...
    @property
    def track_id(self) -> int: ...


class Enqueuer:
    """Called by ingest inside its commit; `clock` gives the current Unix time (tests inject one)."""

    def __init__(self, max_age_s: float, clock: Callable[[], float] = time.time) -> None:
        self.max_age_s = max_age_s
        self.clock = clock
        self.on_enqueued: Callable[[int], object] = lambda _count: None

    async def __call__(
        self, conn: AsyncConnection[Any], events: Sequence[StoredEvent], crops: dict[UUID, str]
    ) -> int:
        """Write the deliveries of `events` (stored now, not erased); returns how many."""
        oldest = datetime.fromtimestamp(self.clock() - self.max_age_s, UTC)
        fresh = [e for e in events if e.ts >= oldest]
        if not fresh:
            return 0
        rules, members = await watch_repo.active_rules(conn)
        if not rules:
            return 0
        zones = {
            s: zone_of(z)
            for s, z in (await watch_repo.site_zones(conn, sorted({e.site for e in fresh}))).items()
        }
        names = await repo.display_names(conn, {e.person_id for e in fresh if e.person_id is not None})
        count = 0
        for event in sorted(fresh, key=lambda e: e.ts):
            sighting = Sighting(event.person_id, event.site, event.camera, event.ts)
            zone = zones.get(event.site, zone_of("UTC"))
            for rule in rules:
                listed = frozenset().union(*(members.get(w, frozenset()) for w in rule.watchlists))
                if not takes(rule, sighting, listed, zone):
                    continue
                if not await repo.claim_cooldown(
                    conn, rule, event.person_id or NIL, site=event.site, camera=event.camera, at=event.ts
                ):
                    continue
                payload = _payload(event, rule, names.get(event.person_id), crops.get(event.id))
                payload["created_at"] = time.time()
                count += await repo.insert_deliveries(
                    conn, rule, event_id=event.id, ts=event.ts, site=event.site, payload=payload
                )
        if count:
            self.on_enqueued(count)
        return count


def _payload(event: StoredEvent, rule: Rule, name: str | None, crop_key: str | None) -> dict[str, Any]:
    """What every channel sends of the match (the crop link is made at send time, so it is fresh)."""
    return {
        "rule": {"id": str(rule.id), "name": rule.name},
        "event": {
            "id": str(event.id),
            "ts": event.ts.isoformat(),
            "site": event.site,
            "edge": event.edge,
            "camera": event.camera,
            "kind": event.kind,
            "person_id": str(event.person_id) if event.person_id else None,
            "person_name": name,
            "score": round(float(event.score), 4),
            "track_id": event.track_id,
        },
        "crop_key": crop_key,
    }
