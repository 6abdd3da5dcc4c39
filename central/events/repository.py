"""Recognition events in PostgreSQL: idempotent batched writes (ingest) and keyset-paged reads (API).

Writes: `insert_events` stores a batch in one statement and returns the ids it actually inserted; an
event whose id was stored before (by any writer, whatever its ts) is skipped by the `events_claim_id`
trigger (0003_events.sql). Every id of a committed batch is then stored, so ingest can acknowledge all
of the batch's ids, not only the returned ones. `copy_events` is the bulk path (COPY, no ids back).

Reads: newest first over (ts DESC, id DESC); every filter combination has an index ending in
(ts, id) (0007_event_listing.sql), so a page is one index range scan per partition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from psycopg import AsyncConnection

EventKind = Literal["recognized", "unknown", "changed"]

_INSERT = """
INSERT INTO events (id, ts, received_at, site_id, edge_id, camera, seq, track_id, kind, person_id, score,
                    threshold, quality, bbox, model_id, gallery_id, gallery_version, first_seen, crop_key)
SELECT u.id, u.ts, coalesce(u.received_at, now()), u.site_id, u.edge_id, u.camera, u.seq, u.track_id,
       u.kind, u.person_id, u.score, u.threshold, u.quality, ARRAY[u.bx, u.by, u.bw, u.bh], u.model_id,
       u.gallery_id, u.gallery_version, u.first_seen, u.crop_key
  FROM unnest(%s::uuid[], %s::timestamptz[], %s::timestamptz[], %s::text[], %s::text[], %s::text[],
              %s::bigint[], %s::bigint[], %s::text[], %s::uuid[], %s::real[], %s::real[], %s::real[],
              %s::real[], %s::real[], %s::real[], %s::real[], %s::text[], %s::text[], %s::integer[],
              %s::timestamptz[], %s::text[])
    AS u(id, ts, received_at, site_id, edge_id, camera, seq, track_id, kind, person_id, score, threshold,
         quality, bx, by, bw, bh, model_id, gallery_id, gallery_version, first_seen, crop_key)
RETURNING id
"""
_COPY_COLUMNS = (
    "id, ts, received_at, site_id, edge_id, camera, seq, track_id, kind, person_id, score, threshold,"
    " quality, bbox, model_id, gallery_id, gallery_version, first_seen, crop_key"
)
COLUMNS = (
    "id, ts, received_at, site_id, edge_id, camera, seq, track_id, kind, person_id, score, threshold,"
    " quality, bbox, model_id, gallery_id, gallery_version, first_seen, crop_key, erased_at"
)


@dataclass(frozen=True, slots=True)
class EventRow:
    """One event to store: the columns of `events` that a writer sets. `received_at` None: now()."""

    id: UUID
    ts: datetime
    site_id: str
    edge_id: str
    camera: str
    track_id: int
    kind: EventKind
    person_id: UUID | None
    score: float
    threshold: float
    quality: float
    bbox: tuple[float, float, float, float]
    model_id: str
    seq: int = 0
    gallery_id: str | None = None
    gallery_version: int = 0
    first_seen: datetime | None = None
    crop_key: str | None = None
    received_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.ts.tzinfo is None or (self.first_seen is not None and self.first_seen.tzinfo is None):
            raise ValueError(f"event {self.id}: times must be timezone-aware (events carry UTC times)")
        if len(self.bbox) != 4:
            raise ValueError(f"event {self.id}: bbox is [x, y, w, h], got {len(self.bbox)} values")


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One row of `events` as read back (column order of COLUMNS)."""

    id: UUID
    ts: datetime
    received_at: datetime
    site_id: str
    edge_id: str
    camera: str
    seq: int
    track_id: int
    kind: str
    person_id: UUID | None
    score: float
    threshold: float
    quality: float
    bbox: list[float]
    model_id: str
    gallery_id: str | None
    gallery_version: int
    first_seen: datetime | None
    crop_key: str | None
    erased_at: datetime | None


async def insert_events(conn: AsyncConnection[Any], rows: Sequence[EventRow]) -> list[UUID]:
    """Store `rows` in one INSERT; returns the ids inserted now (ids stored before, or repeated within
    `rows`, are skipped and not returned). Runs in the caller's transaction."""
    if not rows:
        return []
    columns: list[list[Any]] = [
        [r.id for r in rows],
        [r.ts for r in rows],
        [r.received_at for r in rows],
        [r.site_id for r in rows],
        [r.edge_id for r in rows],
        [r.camera for r in rows],
        [r.seq for r in rows],
        [r.track_id for r in rows],
        [r.kind for r in rows],
        [r.person_id for r in rows],
        [r.score for r in rows],
        [r.threshold for r in rows],
        [r.quality for r in rows],
        *([r.bbox[i] for r in rows] for i in range(4)),
        [r.model_id for r in rows],
        [r.gallery_id for r in rows],
        [r.gallery_version for r in rows],
        [r.first_seen for r in rows],
        [r.crop_key for r in rows],
    ]
    cur = await conn.execute(_INSERT, columns)
    return [row[0] for row in await cur.fetchall()]


async def copy_events(conn: AsyncConnection[Any], rows: Sequence[EventRow]) -> None:
    """Bulk-store `rows` with COPY (the fastest path; duplicates are skipped as with insert_events)."""
    now = datetime.now(UTC)
    async with conn.cursor().copy(f"COPY events ({_COPY_COLUMNS}) FROM STDIN") as copy:
        for r in rows:
            await copy.write_row(
                (r.id, r.ts, r.received_at or now, r.site_id, r.edge_id, r.camera, r.seq, r.track_id, r.kind,
                 r.person_id, r.score, r.threshold, r.quality, list(r.bbox), r.model_id, r.gallery_id,
                 r.gallery_version, r.first_seen, r.crop_key)
            )  # fmt: skip


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Filters of an event listing. `sites` None: every site; a tuple: only those (empty: nothing).
    `unknown` True: person_id IS NULL, False: IS NOT NULL. `since` inclusive, `until` exclusive.
    `after`: the (ts, id) of the last event of the previous page."""

    sites: tuple[str, ...] | None = None
    edge: str | None = None
    camera: str | None = None
    person_id: UUID | None = None
    unknown: bool | None = None
    since: datetime | None = None
    until: datetime | None = None
    after: tuple[datetime, UUID] | None = None
    limit: int = 100


def listing_sql(query: EventQuery) -> tuple[str, dict[str, Any]]:
    """The SQL and parameters of one page. Several sites: one index scan per site (LATERAL), merged,
    because `site_id = ANY(...)` cannot return rows in (ts, id) order from the per-site index."""
    conditions, params = _conditions(query)
    params["limit"] = query.limit
    sites = query.sites
    if sites is not None and len(sites) == 1:
        conditions.insert(0, "site_id = %(site)s")
        params["site"] = sites[0]
    elif sites is not None:
        conditions.insert(0, "site_id = s.site")
        params["sites"] = list(sites)
    where = " AND ".join(conditions) or "true"
    page = f"SELECT {COLUMNS} FROM events WHERE {where} ORDER BY ts DESC, id DESC LIMIT %(limit)s"
    if sites is None or len(sites) == 1:
        return page, params
    return (
        f"SELECT e.* FROM unnest(%(sites)s::text[]) AS s(site) CROSS JOIN LATERAL ({page}) AS e"
        " ORDER BY e.ts DESC, e.id DESC LIMIT %(limit)s",
        params,
    )


def _conditions(query: EventQuery) -> tuple[list[str], dict[str, Any]]:
    conditions: list[str] = []
    params: dict[str, Any] = {}
    for column, value in (("edge_id", query.edge), ("camera", query.camera), ("person_id", query.person_id)):
        if value is not None:
            conditions.append(f"{column} = %({column})s")
            params[column] = value
    if query.unknown is not None:
        conditions.append("person_id IS NULL" if query.unknown else "person_id IS NOT NULL")
    if query.since is not None:
        conditions.append("ts >= %(since)s")
        params["since"] = query.since
    if query.until is not None:
        conditions.append("ts < %(until)s")
        params["until"] = query.until
    if query.after is not None:
        conditions.append("(ts, id) < (%(after_ts)s, %(after_id)s)")
        params["after_ts"], params["after_id"] = query.after
    return conditions, params


async def list_events(conn: AsyncConnection[Any], query: EventQuery) -> list[StoredEvent]:
    """One page of events, newest first (ties broken by id, descending)."""
    if query.sites == ():
        return []
    sql, params = listing_sql(query)
    cur = await conn.execute(sql, params)
    return [StoredEvent(*row) for row in await cur.fetchall()]


async def get_event(conn: AsyncConnection[Any], event_id: UUID) -> StoredEvent | None:
    """The event, found through the id ledger's ts so that only its partition is searched."""
    cur = await conn.execute(
        f"SELECT {COLUMNS} FROM events WHERE id = %(id)s"
        " AND ts = (SELECT ts FROM event_ids WHERE id = %(id)s)",
        {"id": event_id},
    )
    row = await cur.fetchone()
    return StoredEvent(*row) if row else None


LAST_SEEN_SQL = (
    f"SELECT {COLUMNS} FROM events WHERE person_id = %(person)s AND erased_at IS NULL"
    " AND (%(sites)s::text[] IS NULL OR site_id = ANY(%(sites)s)) ORDER BY ts DESC, id DESC LIMIT 1"
)


async def last_seen(
    conn: AsyncConnection[Any], person_id: UUID, sites: Sequence[str] | None
) -> StoredEvent | None:
    """The person's newest event that is not erased (in `sites`, None: any site), or None."""
    if sites is not None and not sites:
        return None
    params = {"person": person_id, "sites": list(sites) if sites is not None else None}
    cur = await conn.execute(LAST_SEEN_SQL, params)
    row = await cur.fetchone()
    return StoredEvent(*row) if row else None


_HOURLY = """
SELECT site_id, date_trunc('hour', ts) AS hour, count(*) FROM events
 WHERE ts >= %(since)s AND (%(sites)s::text[] IS NULL OR site_id = ANY(%(sites)s::text[]))
 GROUP BY site_id, hour ORDER BY hour, site_id
"""


async def hourly_counts(
    conn: AsyncConnection[Any], sites: Sequence[str] | None, since: datetime
) -> list[tuple[str, datetime, int]]:
    """(site, hour, events) for each hour since `since` that has events, in `sites` (None: all)."""
    cur = await conn.execute(_HOURLY, {"since": since, "sites": list(sites) if sites is not None else None})
    return [(str(site), hour, int(count)) for site, hour, count in await cur.fetchall()]


_LAST_PER_SITE = """
SELECT DISTINCT ON (site_id) site_id, ts, edge_id, camera, id FROM events
 WHERE person_id = %(person)s AND (%(sites)s::text[] IS NULL OR site_id = ANY(%(sites)s::text[]))
 ORDER BY site_id, ts DESC
"""


async def last_seen_per_site(
    conn: AsyncConnection[Any], person_id: UUID, sites: Sequence[str] | None
) -> list[tuple[str, datetime, str, str, UUID]]:
    """(site, ts, edge, camera, event id) of the person's latest event at each site of `sites`."""
    cur = await conn.execute(_LAST_PER_SITE, {"person": person_id, "sites": list(sites) if sites else None})
    return [(str(s), ts, str(e), str(c), i) for s, ts, e, c, i in await cur.fetchall()]
