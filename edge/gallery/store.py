"""The gallery cache's SQLite side: schema, the one metadata row, template rows and their checks.

edge/gallery/cache.py holds the Gallery (locking, the index); this module holds what it keeps on disk.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils
from numpy.typing import NDArray

from common.embedding import EPS, l2_normalize
from common.errors import FacegateError
from common.messages import Negative, Snapshot
from edge.gallery.index import IndexChanges, IndexSettings, IndexStamp

SCHEMA = """
CREATE TABLE IF NOT EXISTS gallery_meta (
    id INTEGER PRIMARY KEY CHECK (id = 1), gallery TEXT NOT NULL, version INTEGER NOT NULL,
    model TEXT NOT NULL, embedding_size INTEGER NOT NULL, updated TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS people (label INTEGER PRIMARY KEY AUTOINCREMENT, person_id TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS templates (
    label INTEGER PRIMARY KEY AUTOINCREMENT, template_id TEXT NOT NULL UNIQUE,
    person_id TEXT NOT NULL, model TEXT NOT NULL, embedding BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS templates_person ON templates (person_id);
CREATE TABLE IF NOT EXISTS negatives (
    negative_id TEXT PRIMARY KEY, person_id TEXT NOT NULL, embedding BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS negatives_person ON negatives (person_id);
"""


class GalleryError(FacegateError):
    """The gallery database, or a change offered to it, is unusable."""


class GalleryVersionError(GalleryError):
    """A change that does not apply onto this version; `stale` when it is already applied or older."""

    def __init__(self, gallery: str, current: int, offered: int, what: str = "delta") -> None:
        self.current, self.offered, self.stale = current, offered, offered <= current
        advice = "already applied or older: ignore it" if self.stale else "a gap: fetch the snapshot"
        super().__init__(f"gallery {gallery} is at version {current}; {what} {offered} is {advice}")


class GalleryModelError(GalleryError):
    """Templates of another model, or embeddings of the wrong size: never mixed into a gallery."""


def index_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".hnsw")


def read_meta(db: sqlite_utils.Database) -> dict[str, Any] | None:
    """The gallery's row: gallery, version, model, embedding_size, updated (None in a new database)."""
    rows = list(db.query("SELECT gallery, version, model, embedding_size, updated FROM gallery_meta"))
    return rows[0] if rows else None


def index_stamp(db: sqlite_utils.Database, settings: IndexSettings) -> IndexStamp:
    """The stamp an index saved now carries, and that a saved index must carry to be loaded."""
    meta = read_meta(db) or {}
    return IndexStamp(
        gallery=meta["gallery"],
        version=meta["version"],
        model=meta["model"],
        dim=meta["embedding_size"],
        entries=count_rows(db, "people" if settings.person_match == "mean" else "templates"),
        person_match=settings.person_match,
        space=settings.space,
        m=settings.m,
        ef_construction=settings.ef_construction,
    )


def connect(path: Path) -> sqlite_utils.Database:
    # one connection, used only under the gallery's write lock, from whichever thread holds it
    db = sqlite_utils.Database(sqlite3.connect(str(path), check_same_thread=False))
    db.enable_wal()
    # synchronous=NORMAL: a power loss may undo the last delta, and the version with it (sync refetches)
    for pragma in ("synchronous=NORMAL", "busy_timeout=5000", "temp_store=MEMORY"):
        db.execute(f"PRAGMA {pragma}")
    db.executescript(SCHEMA)
    return db


def init_meta(db: sqlite_utils.Database, gallery_id: str, model_id: str, dim: int) -> dict[str, Any]:
    meta = read_meta(db)
    if meta is None:
        meta = {
            "gallery": gallery_id,
            "version": 0,
            "model": model_id,
            "embedding_size": dim,
            "updated": now_iso(),
        }
        insert_row(db, "gallery_meta", {"id": 1, **meta})
    elif meta["gallery"] != gallery_id:
        raise GalleryError(
            f"this database holds gallery {meta['gallery']}, not {gallery_id}: use another file"
        )
    elif meta["model"] != model_id:
        raise GalleryModelError(
            f"this database holds templates of model {meta['model']}, not {model_id}: "
            "use another file, or delete it and fetch the gallery's snapshot for the new model"
        )
    elif dim and meta["embedding_size"] not in (0, dim):
        raise GalleryModelError(f"this database holds {meta['embedding_size']}-d embeddings, not {dim}-d")
    return meta


def set_meta(db: sqlite_utils.Database, **values: object) -> None:
    db.table("gallery_meta").update(1, {**values, "updated": now_iso()})


def insert_row(db: sqlite_utils.Database, table: str, row: dict[str, Any]) -> int:
    label = db.table(table).insert(row).last_rowid
    if label is None:
        raise GalleryError(f"inserting into {table} gave no row id")
    return label


def count_rows(db: sqlite_utils.Database, table: str) -> int:
    return int(db.table(table).count)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def check_unique(template_ids: Sequence[str], what: str) -> None:
    if len(set(template_ids)) != len(template_ids):
        raise GalleryError(f"{what} names a template id twice: refused")


def decode_embeddings(templates: Sequence[tuple[str, bytes]], dim: int) -> NDArray[np.float32]:
    """Embeddings as an n x dim matrix; the wrong length, NaN, infinity or a zero vector is refused."""
    out = np.zeros((len(templates), dim), np.float32)
    for n, (template_id, blob) in enumerate(templates):
        if len(blob) != 4 * dim or dim <= 0:
            raise GalleryModelError(
                f"template {template_id} has {len(blob)} embedding bytes; this gallery takes {dim} float32 "
                f"({4 * dim} bytes): it comes from another model or is corrupt"
            )
        out[n] = np.frombuffer(blob, dtype="<f4")
    norms = np.linalg.norm(out, axis=1)
    if not np.all(np.isfinite(norms)) or np.any(norms < EPS):
        raise GalleryModelError("an embedding is not finite or is all zeros: refused")
    return out


def replace_rows(db: sqlite_utils.Database, snapshot: Snapshot, people: dict[str, int]) -> None:
    db.execute("DELETE FROM templates")
    db.execute("DELETE FROM people")
    db.table("people").insert_all(({"label": n, "person_id": p} for p, n in people.items()), batch_size=2000)
    model = snapshot.model
    rows = (
        {
            "label": n,
            "template_id": t.template_id,
            "person_id": t.person_id,
            "model": model,
            "embedding": t.embedding,
        }
        for n, t in enumerate(snapshot.templates, 1)
    )
    db.table("templates").insert_all(rows, batch_size=1000)


Negatives = dict[str, NDArray[np.float32]]
"""Each person's negative examples (gallery-change/1.1): an n x d matrix of normalised rows."""


def write_negatives(
    db: sqlite_utils.Database, upserts: Sequence[Negative], deleted: Sequence[str], gone: Sequence[str]
) -> None:
    """In the caller's transaction: delete the negatives of people `gone` and the ids `deleted`, then
    insert or replace `upserts`."""
    for person in gone:
        db.execute("DELETE FROM negatives WHERE person_id = ?", [person])
    for negative_id in deleted:
        db.execute("DELETE FROM negatives WHERE negative_id = ?", [negative_id])
    for n in upserts:
        db.execute(
            "INSERT OR REPLACE INTO negatives (negative_id, person_id, embedding) VALUES (?, ?, ?)",
            [n.negative_id, n.person_id, n.embedding],
        )


def read_negatives(db: sqlite_utils.Database, dim: int) -> Negatives:
    """Every person's negatives, normalised; rows of another size than `dim` are skipped."""
    rows: dict[str, list[NDArray[np.float32]]] = {}
    for person, blob in db.execute("SELECT person_id, embedding FROM negatives ORDER BY negative_id"):
        if dim and len(blob) == 4 * dim:
            rows.setdefault(person, []).append(np.frombuffer(blob, dtype="<f4").astype(np.float32))
    return {person: l2_normalize(np.stack(vectors)) for person, vectors in rows.items()}


def sync_people(db: sqlite_utils.Database, persons: Sequence[str]) -> IndexChanges:
    """Keep `people` in step with `templates` for these persons; the changes to their mean vectors."""
    changes = IndexChanges()
    for person in persons:
        old = db.execute("SELECT label FROM people WHERE person_id = ?", [person]).fetchone()
        blobs = [
            row[0] for row in db.execute("SELECT embedding FROM templates WHERE person_id = ?", [person])
        ]
        if old is not None:
            changes.removed.append(old[0])
        if not blobs:
            db.execute("DELETE FROM people WHERE person_id = ?", [person])
            continue
        label = old[0] if old is not None else insert_row(db, "people", {"person_id": person})
        mean = l2_normalize(np.stack([np.frombuffer(b, dtype="<f4") for b in blobs])).mean(axis=0)
        changes.add(label, l2_normalize(mean), (person, None))
    return changes
