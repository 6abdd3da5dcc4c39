"""Erase reaches the sightings: unknown events whose face matches an erased person's templates.

When a person is erased, the events the edges matched to them are tombstoned (repository.py); their
unknown sightings (events no edge or operator attributed to anyone: `event_embeddings.person_id` null)
would still be findable by photo. `matching_sightings` finds those whose embedding is at least
`threshold` (the recognizer's match threshold) from any of the person's templates, in the erase's
transaction, before the templates go: with pgvector through the HNSW index (nearest 10,000 per
template, iterative scan), without it by a scan of the unknown embeddings in batches (erase is rare).
`drop_sightings` deletes their embeddings and clears their crop keys (the crops are queued for
deletion by the caller); the events themselves stay, as unknown faces without a face.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import numpy as np
from psycopg import AsyncConnection

from central.db.vectors import VECTOR_DIM, vector_search_on

NEAREST = 10_000
SCAN_BATCH = 20_000
_NEAR = """
SELECT event_id FROM (
    SELECT event_id, vec <=> %(q)s::vector AS distance FROM event_embeddings
     WHERE person_id IS NULL AND model_id = %(model)s ORDER BY vec <=> %(q)s::vector LIMIT %(limit)s
) near WHERE distance <= %(distance)s
"""


async def matching_sightings(conn: AsyncConnection[Any], person_id: UUID, threshold: float) -> set[UUID]:
    """Unknown events' ids whose face is at least `threshold` from one of the person's templates."""
    cur = await conn.execute("SELECT model_id, embedding FROM templates WHERE person_id = %s", (person_id,))
    templates: dict[str, list[np.ndarray[Any, Any]]] = {}
    for model, blob in await cur.fetchall():
        vector = np.frombuffer(bytes(blob), dtype="<f4").astype(np.float32)
        templates.setdefault(model, []).append(vector / max(float(np.linalg.norm(vector)), 1e-12))
    found: set[UUID] = set()
    indexed = await vector_search_on(conn)
    for model, vectors in templates.items():
        if indexed and len(vectors[0]) == VECTOR_DIM:
            found |= await _nearest(conn, model, vectors, threshold)
        else:
            found |= await _scan(conn, model, np.stack(vectors), threshold)
    return found


async def _nearest(
    conn: AsyncConnection[Any], model: str, vectors: Sequence[np.ndarray[Any, Any]], threshold: float
) -> set[UUID]:
    await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
    await conn.execute("SET LOCAL hnsw.ef_search = 400")
    found: set[UUID] = set()
    for vector in vectors:
        params = {"q": str(vector.tolist()), "model": model, "limit": NEAREST, "distance": 1.0 - threshold}
        found |= {row[0] for row in await (await conn.execute(_NEAR, params)).fetchall()}
    return found


async def _scan(
    conn: AsyncConnection[Any], model: str, matrix: np.ndarray[Any, Any], threshold: float
) -> set[UUID]:
    found: set[UUID] = set()
    async with conn.cursor(name="erase_sightings") as cur:
        await cur.execute(
            "SELECT event_id, embedding FROM event_embeddings WHERE person_id IS NULL AND model_id = %s",
            (model,),
        )
        while rows := await cur.fetchmany(SCAN_BATCH):
            same = [r for r in rows if len(r[1]) == matrix.shape[1]]
            if not same:
                continue
            sims = np.asarray([r[1] for r in same], np.float32) @ matrix.T
            found |= {r[0] for r, best in zip(same, sims.max(axis=1), strict=True) if best >= threshold}
    return found


async def drop_sightings(conn: AsyncConnection[Any], event_ids: Sequence[UUID]) -> list[str]:
    """Delete the events' embeddings and clear their crop keys; returns the crop keys to delete."""
    if not event_ids:
        return []
    ids = list(event_ids)
    await conn.execute("DELETE FROM event_embeddings WHERE event_id = ANY(%s)", (ids,))
    cur = await conn.execute(
        "SELECT crop_key FROM events WHERE id = ANY(%s) AND crop_key IS NOT NULL", (ids,)
    )
    keys = [row[0] for row in await cur.fetchall()]
    await conn.execute(
        "UPDATE events SET crop_key = NULL WHERE id = ANY(%s) AND crop_key IS NOT NULL", (ids,)
    )
    return keys
