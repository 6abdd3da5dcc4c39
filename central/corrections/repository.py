"""The corrections' SQL: the event as a correction needs it, correction rows, negative examples."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import numpy as np
from psycopg import AsyncConnection

from central.corrections.schemas import CorrectionRead

_EVENT = """
SELECT e.id, e.site_id, e.person_id, e.crop_key, e.erased_at IS NOT NULL, x.model_id, x.embedding,
       (SELECT c.person_id FROM event_corrections c WHERE c.event_id = e.id ORDER BY c.id DESC LIMIT 1),
       EXISTS (SELECT 1 FROM event_corrections c WHERE c.event_id = e.id)
  FROM events e LEFT JOIN event_embeddings x ON x.event_id = e.id
 WHERE e.id = %(id)s AND e.ts = (SELECT ts FROM event_ids WHERE id = %(id)s)
"""
_COLUMNS = (
    "id, event_id, action, wrong_person_id, person_id, negative_id, template_id, template_status, note,"
    " created_by, created_at"
)
_INSERT = f"""
INSERT INTO event_corrections (event_id, action, wrong_person_id, person_id, negative_id, note, created_by)
VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}
"""
_CAPPED = """
DELETE FROM person_negatives WHERE id IN (
    SELECT id FROM person_negatives WHERE person_id = %s ORDER BY created_at DESC, id OFFSET %s)
RETURNING id
"""


@dataclass(frozen=True, slots=True)
class CorrectedEvent:
    """An event as a correction sees it: `person_id` is who it is of now (the last correction's person,
    or the edge's decision when there is none)."""

    id: UUID
    site_id: str
    person_id: UUID | None
    crop_key: str | None
    erased: bool
    model_id: str | None
    embedding: list[float] | None


async def event(conn: AsyncConnection[Any], event_id: UUID) -> CorrectedEvent | None:
    row = await (await conn.execute(_EVENT, {"id": event_id})).fetchone()
    if row is None:
        return None
    eid, site, decided, crop, erased, model, embedding, corrected, has_correction = row
    return CorrectedEvent(eid, site, corrected if has_correction else decided, crop, erased, model, embedding)


async def insert_correction(  # one argument per column
    conn: AsyncConnection[Any],
    event_id: UUID,
    *,
    action: str,
    wrong: UUID | None,
    person: UUID | None,
    negative: UUID | None,
    note: str,
    actor: str,
) -> CorrectionRead:
    cur = await conn.execute(_INSERT, (event_id, action, wrong, person, negative, note, actor))
    row = await cur.fetchone()
    assert row is not None
    return CorrectionRead(**dict(zip(_COLUMNS.replace(" ", "").split(","), row, strict=True)))


async def set_template(
    conn: AsyncConnection[Any], correction_id: int, template_id: UUID | None, status: str
) -> CorrectionRead:
    cur = await conn.execute(
        "UPDATE event_corrections SET template_id = %s, template_status = %s"
        f" WHERE id = %s RETURNING {_COLUMNS}",
        (template_id, status, correction_id),
    )
    row = await cur.fetchone()
    assert row is not None
    return CorrectionRead(**dict(zip(_COLUMNS.replace(" ", "").split(","), row, strict=True)))


async def list_corrections(conn: AsyncConnection[Any], event_id: UUID) -> list[CorrectionRead]:
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM event_corrections WHERE event_id = %s ORDER BY id", (event_id,)
    )
    names = _COLUMNS.replace(" ", "").split(",")
    return [CorrectionRead(**dict(zip(names, row, strict=True))) for row in await cur.fetchall()]


_LEAVE_CLUSTER = """
UPDATE unknown_clusters c SET
    centroid = (SELECT array_agg(a - b ORDER BY n) FROM unnest(c.centroid, x.embedding) WITH ORDINALITY
                AS t(a, b, n)),
    members = greatest(members - 1, 0), updated_at = now()
  FROM event_embeddings x
 WHERE x.event_id = %s AND c.id = x.cluster_id AND c.status = 'open'
"""


async def attribute(conn: AsyncConnection[Any], event_id: UUID, person: UUID | None) -> None:
    """The event's embedding is now of `person` (search, erase and clusters follow it); given a person,
    it leaves its open cluster of unknown faces (centroid and count)."""
    if person is not None:
        await conn.execute(_LEAVE_CLUSTER, (event_id,))
    await conn.execute(
        "UPDATE event_embeddings SET person_id = %s,"
        " cluster_id = CASE WHEN %s::uuid IS NULL THEN cluster_id END WHERE event_id = %s",
        (person, person, event_id),
    )


async def add_negative(
    conn: AsyncConnection[Any],
    person: UUID,
    *,
    model_id: str,
    embedding: list[float],
    event_id: UUID,
    cap: int,
) -> tuple[UUID, list[UUID]]:
    """Store a negative example of `person`; drop their oldest past `cap`. (new id, dropped ids)."""
    vector = np.asarray(embedding, dtype="<f4")
    cur = await conn.execute(
        "INSERT INTO person_negatives (person_id, model_id, embedding, event_id) VALUES (%s, %s, %s, %s)"
        " RETURNING id",
        (person, model_id, vector.tobytes(), event_id),
    )
    row = await cur.fetchone()
    assert row is not None
    dropped = [r[0] for r in await (await conn.execute(_CAPPED, (person, cap))).fetchall()]
    return row[0], dropped
