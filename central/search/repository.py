"""The search's SQL: events by face (pgvector HNSW, cosine), people's names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection

from central.search.schemas import EventHit

EF_SEARCH = 200
"""hnsw.ef_search for search: recall@10 >= 0.99 at 1e6 embeddings (bench/search.py)."""

_EVENTS = """
SELECT event_id, ts, site_id, edge_id, camera, person_id, 1 - distance FROM (
    SELECT x.event_id, x.ts, x.site_id, x.edge_id, x.camera, x.person_id, x.vec <=> %(q)s::vector AS distance
      FROM event_embeddings x
     WHERE x.model_id = %(model)s AND (%(all)s OR x.site_id = ANY(%(sites)s::text[]))
     ORDER BY x.vec <=> %(q)s::vector LIMIT %(limit)s
) found WHERE 1 - distance >= %(threshold)s ORDER BY distance
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
    """The `limit` nearest events' faces (HNSW, iterative scan under a site filter) at least `threshold`."""
    async with conn.transaction():
        await conn.execute(f"SET LOCAL hnsw.ef_search = {max(EF_SEARCH, limit)}")
        await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        params = {
            "q": str(list(vector)),
            "model": model_id,
            "all": sites is None,
            "sites": list(sites or ()),
            "threshold": threshold,
            "limit": limit,
        }
        rows = await (await conn.execute(_EVENTS, params)).fetchall()
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
