"""Appending to galleries' gap-free version logs, always inside the caller's transaction.

A change row's `change` is `{"upserts": [template ids], "deleted_templates": [template ids],
"deleted_people": [person ids]}` and, for a change of scope, `"sites": [site ids]`. Upserts also name
their person in `"owners": {template id: person id}`, so a replay can apply `deleted_people` to
templates whose rows were deleted since (central/galleries/replay.py); bodies without it still replay.

Versions come from the `append_gallery_change` SQL function, which bumps `galleries.current_version`
under its row lock, so concurrent writers queue and no version is skipped or repeated. Callers run these
functions on the connection of the transaction that makes the change itself (enrollment, template
deletion, person deletion, membership or scope change): both commit or neither does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

_PERSON_GALLERIES = """
SELECT g.id, g.model_id FROM gallery_people gp JOIN galleries g ON g.id = gp.gallery_id
 WHERE gp.person_id = %s ORDER BY g.id FOR UPDATE OF g
"""
_TEMPLATE_MODELS = "SELECT id, model_id FROM templates WHERE id = ANY(%s)"


def change_body(
    upserts: Sequence[UUID] = (),
    deleted_templates: Sequence[UUID] = (),
    deleted_people: Sequence[UUID] = (),
    sites: Sequence[str] | None = None,
    *,
    owners: Mapping[UUID, UUID] | None = None,
) -> dict[str, Any]:
    """A change row's body; `owners` maps upserted template ids to their person ids."""
    body: dict[str, Any] = {
        "upserts": [str(t) for t in upserts],
        "deleted_templates": [str(t) for t in deleted_templates],
        "deleted_people": [str(p) for p in deleted_people],
    }
    if sites is not None:
        body["sites"] = sorted(sites)
    if owners:
        body["owners"] = {str(t): str(owners[t]) for t in upserts if t in owners}
    return body


async def append_change(conn: AsyncConnection[Any], gallery_id: str, body: dict[str, Any]) -> int:
    """Append `body` as the gallery's next version and return that version."""
    cur = await conn.execute("SELECT append_gallery_change(%s, %s)", (gallery_id, Jsonb(body)))
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def record_person_change(
    conn: AsyncConnection[Any],
    person_id: UUID,
    *,
    upserts: Sequence[UUID] = (),
    deleted_templates: Sequence[UUID] = (),
    deleted_person: bool = False,
) -> dict[str, int]:
    """Append one change to every gallery that holds the person; returns {gallery id: new version}.

    Upserted templates go only to galleries of the same model id (a template is never compared with
    another model's); call this after inserting them. Deleted template ids and a deleted person go to
    every gallery of the person. Galleries with nothing to change get no version.
    """
    galleries = await (await conn.execute(_PERSON_GALLERIES, (person_id,))).fetchall()
    if not galleries:
        return {}
    models: dict[UUID, str] = {}
    if upserts:
        models = dict(await (await conn.execute(_TEMPLATE_MODELS, (list(upserts),))).fetchall())
    versions: dict[str, int] = {}
    for gallery_id, model_id in galleries:
        mine = [t for t in upserts if models.get(t) == model_id]
        if not (mine or deleted_templates or deleted_person):
            continue
        body = change_body(
            mine,
            deleted_templates,
            [person_id] if deleted_person else [],
            owners=dict.fromkeys(mine, person_id),
        )
        versions[gallery_id] = await append_change(conn, gallery_id, body)
    return versions
