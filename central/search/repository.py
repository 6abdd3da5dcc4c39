"""The search's SQL: events by face (pgvector HNSW, cosine), people's names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection

from central.search.schemas import EventHit

EF_SEARCH = 400
"""hnsw.ef_search for search (bench/search.py: recall@10 against exact search at 1e6 embeddings)."""
OVERFETCH = 4
"""Nearest rows taken from the index per row answered: the iterative scan returns them in relaxed
order, so the best `limit` of `OVERFETCH * limit` are taken, re-ordered exactly."""

EXACT_BELOW = 50_000
"""A site scope holding fewer embeddings than this is searched exactly: an index-only scan of the
(site, model) INCLUDE (event_id, vec) index computes every distance; HNSW under a selective filter
loses recall (bench/search.py)."""
_IN_SCOPE = "SELECT count(*) FROM (SELECT 1 FROM event_embeddings WHERE site_id = ANY(%s::text[]) LIMIT %s) s"
_EXACT = """
SELECT x.event_id, x.ts, x.site_id, x.edge_id, x.camera, x.person_id, 1 - near.distance FROM (
    SELECT event_id, vec <=> %(q)s::vector AS distance FROM event_embeddings
     WHERE site_id = ANY(%(sites)s::text[]) AND model_id = %(model)s AND vec IS NOT NULL
     ORDER BY (vec <=> %(q)s::vector) + 0 LIMIT %(limit)s  -- "+ 0": the site index, not the HNSW one
) near JOIN event_embeddings x ON x.event_id = near.event_id
 WHERE 1 - near.distance >= %(threshold)s ORDER BY near.distance
"""
_EVENTS = """
WITH near AS MATERIALIZED (
    SELECT x.event_id, x.ts, x.site_id, x.edge_id, x.camera, x.person_id, x.vec <=> %(q)s::vector AS distance
      FROM event_embeddings x
     WHERE x.model_id = %(model)s AND (%(all)s OR x.site_id = ANY(%(sites)s::text[]))
     ORDER BY x.vec <=> %(q)s::vector LIMIT %(fetch)s
)
SELECT event_id, ts, site_id, edge_id, camera, person_id, 1 - distance FROM near
 WHERE 1 - distance >= %(threshold)s ORDER BY distance LIMIT %(limit)s
"""


async def similar_events(
    conn: AsyncConnection[Any],
    vector: Sequence[float],
    *,
    model_id: str,
    sites: Sequence[str] | None,
    threshold: float,
    limit: int,
) -> list[EventHit]:
    """The `limit` nearest events' faces at least `threshold`: exact within a site scope of fewer than
    EXACT_BELOW embeddings, else HNSW (iterative scan under a site filter; hnsw.ef_search and
    iterative_scan are set for this transaction only)."""
    async with conn.transaction():
        fetch = OVERFETCH * limit
        await conn.execute(f"SET LOCAL hnsw.ef_search = {max(EF_SEARCH, fetch)}")
        await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        params = {
            "q": str(list(vector)),
            "model": model_id,
            "all": sites is None,
            "sites": list(sites or ()),
            "threshold": threshold,
            "limit": limit,
            "fetch": fetch,
        }
        query = _EVENTS
        if sites is not None:
            count = await (await conn.execute(_IN_SCOPE, (list(sites), EXACT_BELOW))).fetchone()
            query = _EXACT if count is not None and count[0] < EXACT_BELOW else _EVENTS
        rows = await (await conn.execute(query, params)).fetchall()
    return [
        EventHit(event_id=r[0], ts=r[1], site=r[2], edge=r[3], camera=r[4], person_id=r[5], score=float(r[6]))
        for r in rows
    ]


async def names(conn: AsyncConnection[Any], people: Sequence[UUID]) -> dict[UUID, tuple[str | None, str]]:
    """{person id: (external id, display name)} of the live ones of `people`."""
    cur = await conn.execute(
        "SELECT id, external_id, display_name FROM people WHERE id = ANY(%s) AND deleted_at IS NULL",
        (list(people),),
    )
    return {row[0]: (row[1], row[2]) for row in await cur.fetchall()}
