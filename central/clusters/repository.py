"""The clusters' SQL: the worker's queue and cluster rows (pgvector over centroids), listings, and the
attribution of a cluster's events to a person."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import numpy as np
from numpy.typing import NDArray
from psycopg import AsyncConnection

CLUSTER_LOCK_KEY = 0x66676C7573746572  # "fgluster": one replica clusters at a time

_QUEUE = """
SELECT x.event_id, x.ts, x.site_id, x.model_id, x.embedding, e.quality, e.crop_key IS NOT NULL
  FROM event_embeddings x JOIN events e ON e.id = x.event_id AND e.ts = x.ts
 WHERE x.cluster_id IS NULL AND x.person_id IS NULL AND x.vec IS NOT NULL
 ORDER BY x.ts LIMIT %s
"""
_NEAREST = """
SELECT id, centroid FROM unknown_clusters WHERE status = 'open' AND model_id = %s AND vec IS NOT NULL
 ORDER BY vec <=> %s::real[]::vector LIMIT %s
"""
_NEW = """
INSERT INTO unknown_clusters (model_id, centroid, members, sites, first_seen, last_seen, best_event_id,
                              best_quality)
VALUES (%(model)s, %(vector)s, 1, ARRAY[%(site)s], %(ts)s, %(ts)s, %(best)s, %(quality)s) RETURNING id
"""
_JOIN = """
UPDATE unknown_clusters SET
    centroid = (SELECT array_agg(c + v ORDER BY n) FROM unnest(centroid, %(vector)s::real[]) WITH ORDINALITY
                AS t(c, v, n)),
    members = members + 1,
    sites = CASE WHEN %(site)s = ANY(sites) THEN sites ELSE sites || %(site)s END,
    first_seen = least(first_seen, %(ts)s), last_seen = greatest(last_seen, %(ts)s),
    best_event_id = CASE WHEN %(best)s::uuid IS NOT NULL AND %(quality)s > best_quality
                         THEN %(best)s::uuid ELSE best_event_id END,
    best_quality = CASE WHEN %(best)s::uuid IS NOT NULL THEN greatest(best_quality, %(quality)s)
                        ELSE best_quality END,
    updated_at = now()
 WHERE id = %(id)s
"""
_COLUMNS = "id, members, sites, first_seen, last_seen, best_event_id, status, person_id"
_LIST = f"""
SELECT {_COLUMNS} FROM unknown_clusters
 WHERE status = %(status)s AND (%(all)s OR sites && %(sites)s::text[]) AND id < %(before)s
 ORDER BY id DESC LIMIT %(limit)s
"""
_EVENTS = """
SELECT x.event_id, x.ts, x.site_id, x.camera, e.quality, e.crop_key
  FROM event_embeddings x JOIN events e ON e.id = x.event_id AND e.ts = x.ts
 WHERE x.cluster_id = %(id)s AND (%(all)s OR x.site_id = ANY(%(sites)s::text[]))
 ORDER BY {order} LIMIT %(limit)s
"""


@dataclass(frozen=True, slots=True)
class Queued:
    event_id: UUID
    ts: datetime
    site: str
    model_id: str
    embedding: NDArray[np.float32]
    quality: float
    has_crop: bool


@dataclass(frozen=True, slots=True)
class ClusterRow:
    id: int
    members: int
    sites: list[str]
    first_seen: datetime
    last_seen: datetime
    best_event_id: UUID | None
    status: str
    person_id: UUID | None


@dataclass(frozen=True, slots=True)
class MemberEvent:
    event_id: UUID
    ts: datetime
    site: str
    camera: str
    quality: float
    crop_key: str | None


async def try_lock(conn: AsyncConnection[Any]) -> bool:
    """The clustering lock for this transaction (another replica holding it: False)."""
    row = await (await conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (CLUSTER_LOCK_KEY,))).fetchone()
    return bool(row and row[0])


async def queue(conn: AsyncConnection[Any], limit: int) -> list[Queued]:
    rows = await (await conn.execute(_QUEUE, (limit,))).fetchall()
    return [
        Queued(eid, ts, site, model, np.asarray(vec, np.float32), float(quality), bool(crop))
        for eid, ts, site, model, vec, quality, crop in rows
    ]


async def nearest(
    conn: AsyncConnection[Any], model_id: str, vector: Sequence[float], limit: int
) -> tuple[list[int], NDArray[np.float32]]:
    """The open clusters of `model_id` whose centroids are nearest `vector` (ids, centroid sums)."""
    rows = await (await conn.execute(_NEAREST, (model_id, list(vector), limit))).fetchall()
    if not rows:
        return [], np.zeros((0, len(vector)), np.float32)
    return [r[0] for r in rows], np.asarray([r[1] for r in rows], np.float32)


async def place(conn: AsyncConnection[Any], item: Queued, cluster: int | None) -> int:
    """Start a cluster with `item` (cluster None) or add it to `cluster`; mark the event. The cluster id."""
    params = {
        "model": item.model_id,
        "vector": item.embedding.tolist(),
        "site": item.site,
        "ts": item.ts,
        "best": item.event_id if item.has_crop else None,
        "quality": item.quality if item.has_crop else -1.0,
        "id": cluster,
    }
    if cluster is None:
        row = await (await conn.execute(_NEW, params)).fetchone()
        assert row is not None
        cluster = int(row[0])
    else:
        await conn.execute(_JOIN, params)
    await conn.execute(
        "UPDATE event_embeddings SET cluster_id = %s WHERE event_id = %s", (cluster, item.event_id)
    )
    return cluster


async def list_clusters(
    conn: AsyncConnection[Any], status: str, sites: Sequence[str] | None, before: int, limit: int
) -> list[ClusterRow]:
    params = {
        "status": status,
        "all": sites is None,
        "sites": list(sites or ()),
        "before": before,
        "limit": limit,
    }
    return [ClusterRow(*row) for row in await (await conn.execute(_LIST, params)).fetchall()]


async def get_cluster(
    conn: AsyncConnection[Any], cluster_id: int, *, lock: bool = False
) -> ClusterRow | None:
    suffix = " FOR UPDATE" if lock else ""
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM unknown_clusters WHERE id = %s{suffix}", (cluster_id,))
    row = await cur.fetchone()
    return ClusterRow(*row) if row else None


async def events(
    conn: AsyncConnection[Any],
    cluster_id: int,
    sites: Sequence[str] | None,
    limit: int,
    *,
    best_first: bool = False,
) -> list[MemberEvent]:
    """The cluster's events (newest first, or best quality with a crop first)."""
    order = "(e.crop_key IS NULL), e.quality DESC" if best_first else "x.ts DESC"
    params = {"id": cluster_id, "all": sites is None, "sites": list(sites or ()), "limit": limit}
    rows = await (await conn.execute(_EVENTS.format(order=order), params)).fetchall()
    return [MemberEvent(*row) for row in rows]


async def crop_keys(conn: AsyncConnection[Any], event_ids: Sequence[UUID]) -> dict[UUID, str]:
    """{event id: crop key} of those of `event_ids` that have a crop."""
    if not event_ids:
        return {}
    cur = await conn.execute(
        "SELECT e.id, e.crop_key FROM events e JOIN event_ids i ON i.id = e.id AND i.ts = e.ts"
        " WHERE e.id = ANY(%s::uuid[]) AND e.crop_key IS NOT NULL",
        (list(event_ids),),
    )
    return {row[0]: row[1] for row in await cur.fetchall()}


async def attribute(conn: AsyncConnection[Any], cluster_id: int, person: UUID, status: str) -> int:
    """The cluster is `person`'s (enrolled or merged): its events' embeddings follow; how many."""
    await conn.execute(
        "UPDATE unknown_clusters SET status = %s, person_id = %s, updated_at = now() WHERE id = %s",
        (status, person, cluster_id),
    )
    cur = await conn.execute(
        "UPDATE event_embeddings SET person_id = %s WHERE cluster_id = %s", (person, cluster_id)
    )
    return cur.rowcount
