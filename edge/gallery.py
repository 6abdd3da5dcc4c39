"""The edge's gallery cache: templates in SQLite (sqlite-utils, WAL), searched through an index.

SQLite is the truth; the in-memory index (edge/index.py: exact numpy below `exact_below` entries,
hnswlib above) is derived from it. Every template row has an integer `label` (AUTOINCREMENT: not
reused while rows live), which is also its index label; with `person_match="mean"` the index holds
one normalised mean per person instead, labelled by the person's row in `people`.

Concurrency: one writer at a time (`_write_lock`: deltas, snapshots, erasures, close), searches from
any thread. A search holds `_lock` while it reads the index; a writer changes the index only under
`_lock` and only after its SQLite transaction committed. A snapshot builds its whole new index
without the lock and swaps it in under it: searches answer from the old gallery until the swap.

Persistence: an hnswlib index is saved beside the database (`<db>.hnsw` plus the sidecar stamp
`<db>.hnsw.json`: gallery, version, entry count, parameters) after a snapshot or a rebuild, and on
`close()` when deltas changed it. At open it is loaded when its stamp matches the database and
rebuilt otherwise, so a crash after a delta costs one rebuild, never a wrong answer.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils
from numpy.typing import NDArray

from common.embedding import EPS, l2_normalize
from common.errors import FacegateError
from common.messages import GalleryChange, Snapshot, Template
from edge import index as ix
from edge.index import Entry, Hit, IndexChanges, IndexKind, IndexSettings, IndexStamp, LabelledIndex

log = logging.getLogger(__name__)
__all__ = ["Gallery", "GalleryError", "GalleryModelError", "GalleryVersionError", "Hit"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS gallery_meta (
    id INTEGER PRIMARY KEY CHECK (id = 1), gallery TEXT NOT NULL, version INTEGER NOT NULL,
    model TEXT NOT NULL, embedding_size INTEGER NOT NULL, updated TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS people (label INTEGER PRIMARY KEY AUTOINCREMENT, person_id TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS templates (
    label INTEGER PRIMARY KEY AUTOINCREMENT, template_id TEXT NOT NULL UNIQUE,
    person_id TEXT NOT NULL, model TEXT NOT NULL, embedding BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS templates_person ON templates (person_id);
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


class Gallery:
    """One gallery's cache on this edge; `Gallery.open` creates it. Thread-safe (see the module doc)."""

    def __init__(self, db: sqlite_utils.Database, path: Path, settings: IndexSettings, meta: dict[str, Any]):
        self._db, self._settings, self._index_path = db, settings, index_path(path)
        self.gallery_id: str = meta["gallery"]
        self.model_id: str = meta["model"]
        self._version: int = meta["version"]
        self._dim: int = meta["embedding_size"]
        self._lock, self._write_lock = threading.Lock(), threading.Lock()
        self._view = LabelledIndex(
            ix.ExactIndex(np.zeros(0, np.int64), np.zeros((0, self._dim), np.float32)), {}
        )
        self._dirty = self._closed = False
        self._template_count = 0
        self.index_builds = 0  # indexes this object built from vectors (a loaded one does not count)

    @classmethod
    def open(
        cls, path: Path, gallery_id: str, model_id: str, settings: IndexSettings | None = None, dim: int = 0
    ) -> Gallery:
        """Open or create the database at `path` (`dim`: embedding size, 0 = from the first templates)."""
        db = _connect(path)
        try:
            gallery = cls(db, path, settings or IndexSettings(), _init_meta(db, gallery_id, model_id, dim))
            gallery._view = gallery._load_or_build()
        except BaseException:
            db.close()
            raise
        return gallery

    @property
    def version(self) -> int:
        return self._version

    @property
    def template_count(self) -> int:
        return self._template_count

    @property
    def index_kind(self) -> IndexKind:
        return self._view.kind

    def search(self, vectors: NDArray[np.float32], k: int) -> list[list[Hit]]:
        """The k nearest templates (or person means) of each query (n x d; normalised here), best first."""
        queries = l2_normalize(np.atleast_2d(vectors))
        with self._lock:
            if self._view.index.count and queries.shape[1] != self._dim:
                raise GalleryModelError(
                    f"queries have {queries.shape[1]} dimensions, the gallery {self._dim}"
                )
            return self._view.search(queries, k)

    def apply_delta(self, change: GalleryChange) -> None:
        """Apply the delta from `version - 1` to `version` atomically; refuse any other version."""
        with self._write_lock:
            self._check(change.gallery, change.model, f"delta {change.version}")
            if change.version != self._version + 1:
                raise GalleryVersionError(self.gallery_id, self._version, change.version)
            for template in change.upserts:
                self._check(change.gallery, template.model, f"template {template.template_id}")
            _unique([t.template_id for t in change.upserts], f"delta {change.version}")
            dim = self._dim or (len(change.upserts[0].embedding) // 4 if change.upserts else 0)
            vectors = _decode([(t.template_id, t.embedding) for t in change.upserts], dim)
            with self._db.atomic():
                changes = self._write(
                    change.upserts, vectors, change.deleted_templates, change.deleted_people
                )
                _set_meta(self._db, version=change.version, embedding_size=dim)
            self._version, self._dim = change.version, dim
            self._apply(changes)

    def erase_person(self, person_id: str) -> int:
        """Remove a person's templates at once (an erase command); the version stays. Returns how many."""
        with self._write_lock:
            self._check(self.gallery_id, self.model_id, "erase")
            count = int(self._db.table("templates").count_where("person_id = ?", [person_id]))
            with self._db.atomic():
                changes = self._write([], np.zeros((0, self._dim), np.float32), [], [person_id])
                _set_meta(self._db)
            self._apply(changes)
            return count

    def replace_with_snapshot(self, snapshot: Snapshot, *, allow_older: bool = False) -> None:
        """Swap in a whole snapshot: rows in one transaction, then its prebuilt index under the lock."""
        with self._write_lock:
            self._check(snapshot.gallery, snapshot.model, f"snapshot {snapshot.version}")
            if self._dim and snapshot.embedding_size != self._dim:
                raise GalleryModelError(
                    f"snapshot embeddings are {snapshot.embedding_size}-d, the gallery's {self._dim}-d"
                )
            if snapshot.version < self._version and not allow_older:
                raise GalleryVersionError(self.gallery_id, self._version, snapshot.version, "snapshot")
            templates = snapshot.templates
            _unique([t.template_id for t in templates], f"snapshot {snapshot.version}")
            vectors = _decode([(t.template_id, t.embedding) for t in templates], snapshot.embedding_size)
            people = {pid: n for n, pid in enumerate(dict.fromkeys(t.person_id for t in templates), 1)}
            rows: list[Entry] = [(t.person_id, t.template_id) for t in templates]
            # the slow part, while searches go on against the old index and nothing has changed yet
            view = self._build(
                np.arange(1, len(templates) + 1, dtype=np.int64), rows, l2_normalize(vectors), people
            )
            ix.stamp_path(self._index_path).unlink(missing_ok=True)  # the saved index is stale from here on
            self._dirty = True
            with self._db.atomic():
                _replace_rows(self._db, snapshot, people)
                _set_meta(self._db, version=snapshot.version, embedding_size=snapshot.embedding_size)
            self._version, self._dim = snapshot.version, snapshot.embedding_size
            self._template_count = len(rows)
            self._save(view)
            with self._lock:
                self._view = view

    def close(self) -> None:
        """Save the hnswlib index when deltas changed it, and close the database."""
        with self._write_lock:
            if not self._closed:
                if self._dirty:
                    self._save(self._view)
                self._closed = True
                self._db.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check(self, gallery: str, model: str, what: str) -> None:
        if self._closed:
            raise GalleryError(f"gallery {self.gallery_id} is closed")
        if gallery != self.gallery_id:
            raise GalleryError(f"{what} belongs to gallery {gallery}, not {self.gallery_id}")
        if model != self.model_id:
            raise GalleryModelError(
                f"{what} is of model {model}; gallery {self.gallery_id} holds {self.model_id}"
            )

    def _write(
        self,
        upserts: Sequence[Template],
        vectors: NDArray[np.float32],
        dropped: Sequence[str],
        gone: Sequence[str],
    ) -> IndexChanges:
        """In the caller's transaction: delete people `gone`, templates `dropped`, then upsert."""
        db, changes, affected = self._db, IndexChanges(), set(gone)
        for person in gone:
            changes.removed += [
                r[0] for r in db.execute("SELECT label FROM templates WHERE person_id = ?", [person])
            ]
            db.execute("DELETE FROM templates WHERE person_id = ?", [person])
        for template_id in [*dropped, *(t.template_id for t in upserts)]:  # an upsert is delete + insert
            row = db.execute(
                "SELECT label, person_id FROM templates WHERE template_id = ?", [template_id]
            ).fetchone()
            if row is not None:
                changes.removed.append(row[0])
                affected.add(row[1])
                db.execute("DELETE FROM templates WHERE label = ?", [row[0]])
        for t, vector in zip(upserts, l2_normalize(vectors), strict=True):
            row = {"template_id": t.template_id, "person_id": t.person_id, "model": t.model}
            label = _insert(db, "templates", {**row, "embedding": t.embedding})
            changes.add(label, vector, (t.person_id, t.template_id))
            affected.add(t.person_id)
        means = _sync_people(db, sorted(affected))
        return means if self._settings.person_match == "mean" else changes

    def _apply(self, changes: IndexChanges) -> None:
        """After commit: change the index in place, or rebuild it from the database when that is better."""
        self._template_count = _count(self._db, "templates")
        view = self._view
        count = len(view.entries) - len(changes.removed) + len(changes.labels)
        compact = view.tombstones + len(changes.removed) > count
        if view.index.count == 0 or compact or ix.kind_for(count, self._settings) != view.kind:
            view = self._build_from_db()
            self._save(view)
            with self._lock:
                self._view = view
            return
        with self._lock:
            view.change(changes)
        self._dirty = self._dirty or view.kind == "hnsw"

    def _load_or_build(self) -> LabelledIndex:
        self._template_count = _count(self._db, "templates")
        stamp = index_stamp(self._db, self._settings)
        if ix.kind_for(stamp.entries, self._settings) == "hnsw":
            index = ix.HnswIndex.load(self._index_path, stamp, self._settings)
            if index is not None:
                log.info("gallery_index_loaded", extra={"gallery": self.gallery_id, "entries": stamp.entries})
                query = "SELECT label, person_id, template_id FROM templates"
                if self._settings.person_match == "mean":
                    query = "SELECT label, person_id, NULL FROM people"
                return LabelledIndex(index, {row[0]: (row[1], row[2]) for row in self._db.execute(query)})
        view = self._build_from_db()
        self._save(view)
        return view

    def _build_from_db(self) -> LabelledIndex:
        count = self._template_count
        labels, vectors = np.zeros(count, np.int64), np.zeros((count, self._dim), np.float32)
        rows: list[Entry] = []
        query = "SELECT label, person_id, template_id, embedding FROM templates ORDER BY label"
        for n, (label, person, template, blob) in enumerate(self._db.execute(query)):
            labels[n], vectors[n] = label, np.frombuffer(blob, dtype="<f4")
            rows.append((person, template))
        people = {pid: label for label, pid in self._db.execute("SELECT label, person_id FROM people")}
        return self._build(labels, rows, l2_normalize(vectors), people)

    def _build(
        self,
        labels: NDArray[np.int64],
        rows: list[Entry],
        vectors: NDArray[np.float32],
        people: dict[str, int],
    ) -> LabelledIndex:
        self.index_builds += 1
        view = LabelledIndex.build(labels, rows, vectors, people, self._settings)
        log.info("gallery_index_built", extra={"gallery": self.gallery_id, "entries": len(rows)})
        return view

    def _save(self, view: LabelledIndex) -> None:
        if isinstance(view.index, ix.HnswIndex):
            try:
                view.index.save(self._index_path, index_stamp(self._db, self._settings))
            except OSError as err:  # the gallery still works; the next start rebuilds the index
                log.warning("gallery_index_not_saved", extra={"gallery": self.gallery_id, "error": str(err)})
                return
        self._dirty = False


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
        entries=_count(db, "people" if settings.person_match == "mean" else "templates"),
        person_match=settings.person_match,
        space=settings.space,
        m=settings.m,
        ef_construction=settings.ef_construction,
    )


def _connect(path: Path) -> sqlite_utils.Database:
    # one connection, used only under the gallery's write lock, from whichever thread holds it
    db = sqlite_utils.Database(sqlite3.connect(str(path), check_same_thread=False))
    db.enable_wal()
    # synchronous=NORMAL: a power loss may undo the last delta, and the version with it (sync refetches)
    for pragma in ("synchronous=NORMAL", "busy_timeout=5000", "temp_store=MEMORY"):
        db.execute(f"PRAGMA {pragma}")
    db.executescript(_SCHEMA)
    return db


def _init_meta(db: sqlite_utils.Database, gallery_id: str, model_id: str, dim: int) -> dict[str, Any]:
    meta = read_meta(db)
    if meta is None:
        meta = {
            "gallery": gallery_id,
            "version": 0,
            "model": model_id,
            "embedding_size": dim,
            "updated": _now(),
        }
        _insert(db, "gallery_meta", {"id": 1, **meta})
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


def _set_meta(db: sqlite_utils.Database, **values: object) -> None:
    db.table("gallery_meta").update(1, {**values, "updated": _now()})


def _insert(db: sqlite_utils.Database, table: str, row: dict[str, Any]) -> int:
    label = db.table(table).insert(row).last_rowid
    if label is None:
        raise GalleryError(f"inserting into {table} gave no row id")
    return label


def _count(db: sqlite_utils.Database, table: str) -> int:
    return int(db.table(table).count)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _unique(template_ids: Sequence[str], what: str) -> None:
    if len(set(template_ids)) != len(template_ids):
        raise GalleryError(f"{what} names a template id twice: refused")


def _decode(templates: Sequence[tuple[str, bytes]], dim: int) -> NDArray[np.float32]:
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


def _replace_rows(db: sqlite_utils.Database, snapshot: Snapshot, people: dict[str, int]) -> None:
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


def _sync_people(db: sqlite_utils.Database, persons: Sequence[str]) -> IndexChanges:
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
        label = old[0] if old is not None else _insert(db, "people", {"person_id": person})
        mean = l2_normalize(np.stack([np.frombuffer(b, dtype="<f4") for b in blobs])).mean(axis=0)
        changes.add(label, l2_normalize(mean), (person, None))
    return changes
