"""Building the MQTT messages of a gallery: the delta of each version and the manifest.

A delta (common.messages.GalleryChange) of version v carries the change row's `deleted_templates` and
`deleted_people` as they are, and its `upserts` as full templates (person id, template id, model id,
embedding) read from `templates` at publish time. An upserted template whose row is gone is left out:
its deletion (template deletion, erasure) or its person's removal from the gallery was committed as a
later version of the same gallery, so edges applying the deltas in order reach exactly that version's
set; the versions in between only lack a template that is going away. Face data is thus never read
from anywhere but live `templates` rows: an erased person's embeddings are never sent again.
A change of scope (`sites`) publishes an empty delta, so versions stay gap-free on the edges.
Negatives (gallery-change/1.1) are read the same way from `person_negatives`: one deleted since (cap,
erase) is left out, and its deletion travels in a later delta.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from central.distribution import repository as repo
from common.messages import GalleryChange, GalleryManifest, Negative, Template

log = logging.getLogger("central.distribution")


@dataclass(frozen=True, slots=True)
class GalleryState:
    """A gallery row as the distributor reads it."""

    id: str
    model_id: str
    current_version: int
    published_version: int


@dataclass(frozen=True, slots=True)
class StoredSnapshot:
    version: int
    object_key: str
    sha256: str
    template_count: int
    created_at: datetime


async def gallery_state(conn: AsyncConnection[Any], gallery_id: str) -> GalleryState | None:
    row = await repo.gallery(conn, gallery_id)
    return GalleryState(*row) if row else None


async def build_deltas(
    conn: AsyncConnection[Any], gallery: GalleryState, after: int, upto: int, limit: int
) -> list[GalleryChange]:
    """The deltas of versions after+1 .. upto (at most `limit` of them), in order."""
    rows = await repo.changes(conn, gallery.id, after, upto, limit)
    wanted = sorted({t for _, body, _ in rows for t in body.get("upserts", ())})
    found = await repo.templates(conn, wanted, gallery.model_id) if wanted else {}
    wanted_negatives = sorted({n for _, body, _ in rows for n in body.get("negatives", ())})
    negatives = await repo.negatives(conn, wanted_negatives, gallery.model_id) if wanted_negatives else {}
    deltas: list[GalleryChange] = []
    for version, body, created_at in rows:
        upserts = [
            Template(person_id=found[t][0], template_id=t, model=gallery.model_id, embedding=found[t][1])
            for t in body.get("upserts", ())
            if t in found
        ]
        omitted = len(body.get("upserts", ())) - len(upserts)
        if omitted:
            log.info(
                "delta_upserts_omitted",
                extra={"gallery": gallery.id, "version": version, "templates": omitted},
            )
        deltas.append(
            GalleryChange(
                ts=created_at,
                gallery=gallery.id,
                version=version,
                model=gallery.model_id,
                upserts=upserts,
                deleted_templates=list(body.get("deleted_templates", ())),
                deleted_people=list(body.get("deleted_people", ())),
                negatives=[
                    Negative(person_id=negatives[n][0], negative_id=n, embedding=negatives[n][1])
                    for n in body.get("negatives", ())
                    if n in negatives
                ],
                deleted_negatives=list(body.get("deleted_negatives", ())),
            )
        )
    return deltas


async def newest_snapshot(conn: AsyncConnection[Any], gallery_id: str, upto: int) -> StoredSnapshot | None:
    """The stored snapshot of the highest version <= `upto`, if any."""
    row = await repo.newest_snapshot(conn, gallery_id, upto)
    return StoredSnapshot(*row) if row else None


def manifest(gallery: GalleryState, version: int, snapshot: StoredSnapshot | None) -> GalleryManifest:
    """The retained manifest of `version`, naming `snapshot` (empty snapshot fields when there is none)."""
    if snapshot is None:
        return GalleryManifest(gallery=gallery.id, version=version, model=gallery.model_id)
    return GalleryManifest(
        gallery=gallery.id,
        version=version,
        model=gallery.model_id,
        snapshot_key=snapshot.object_key,
        snapshot_sha256=snapshot.sha256,
        snapshot_version=snapshot.version,
        template_count=snapshot.template_count,
    )
