"""The edge's gallery cache: templates in SQLite (sqlite-utils, WAL), searched through an index.

SQLite is the truth; the in-memory index (edge/gallery/index.py: exact numpy below `exact_below` entries,
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
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils
from numpy.typing import NDArray

from common.embedding import l2_normalize
from common.messages import GalleryChange, Snapshot, Template
from edge.gallery import index as ix
from edge.gallery.index import Entry, Hit, IndexChanges, IndexKind, IndexSettings, LabelledIndex
from edge.gallery.store import (
    GalleryError,
    GalleryModelError,
    GalleryVersionError,
    Negatives,
    check_unique,
    connect,
    count_rows,
    decode_embeddings,
    index_path,
    index_stamp,
    init_meta,
    insert_row,
    read_meta,
    read_negatives,
    replace_rows,
    set_meta,
    sync_people,
    write_negatives,
)

log = logging.getLogger(__name__)
__all__ = [
    "Gallery",
    "GalleryError",
    "GalleryModelError",
    "GalleryVersionError",
    "Hit",
    "index_path",
    "index_stamp",
    "read_meta",
]


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
        self._negatives: Negatives = {}
        self.index_builds = 0  # indexes this object built from vectors (a loaded one does not count)

    @classmethod
    def open(
        cls, path: Path, gallery_id: str, model_id: str, settings: IndexSettings | None = None, dim: int = 0
    ) -> Gallery:
        """Open or create the database at `path` (`dim`: embedding size, 0 = from the first templates)."""
        db = connect(path)
        try:
            gallery = cls(db, path, settings or IndexSettings(), init_meta(db, gallery_id, model_id, dim))
            gallery._view = gallery._load_or_build()
            gallery._negatives = read_negatives(db, gallery._dim)
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

    def negatives(self, person_id: str) -> NDArray[np.float32] | None:
        """The person's negative examples (n x d, normalised), or None when they have none."""
        return self._negatives.get(person_id)

    @property
    def negative_count(self) -> int:
        return sum(len(v) for v in self._negatives.values())

    def apply_delta(self, change: GalleryChange) -> None:
        """Apply the delta from `version - 1` to `version` atomically; refuse any other version."""
        with self._write_lock:
            self._check(change.gallery, change.model, f"delta {change.version}")
            if change.version != self._version + 1:
                raise GalleryVersionError(self.gallery_id, self._version, change.version)
            for template in change.upserts:
                self._check(change.gallery, template.model, f"template {template.template_id}")
            check_unique([t.template_id for t in change.upserts], f"delta {change.version}")
            dim = self._dim or (len(change.upserts[0].embedding) // 4 if change.upserts else 0)
            vectors = decode_embeddings([(t.template_id, t.embedding) for t in change.upserts], dim)
            with self._db.atomic():
                changes = self._write(
                    change.upserts, vectors, change.deleted_templates, change.deleted_people
                )
                write_negatives(self._db, change.negatives, change.deleted_negatives, change.deleted_people)
                set_meta(self._db, version=change.version, embedding_size=dim)
            self._version, self._dim = change.version, dim
            self._apply(changes)
            self._reload_negatives()

    def erase_person(self, person_id: str) -> int:
        """Remove a person's templates at once (an erase command); the version stays. Returns how many."""
        with self._write_lock:
            self._check(self.gallery_id, self.model_id, "erase")
            count = int(self._db.table("templates").count_where("person_id = ?", [person_id]))
            with self._db.atomic():
                changes = self._write([], np.zeros((0, self._dim), np.float32), [], [person_id])
                write_negatives(self._db, [], [], [person_id])
                set_meta(self._db)
            self._apply(changes)
            self._reload_negatives()
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
            check_unique([t.template_id for t in templates], f"snapshot {snapshot.version}")
            vectors = decode_embeddings(
                [(t.template_id, t.embedding) for t in templates], snapshot.embedding_size
            )
            people = {pid: n for n, pid in enumerate(dict.fromkeys(t.person_id for t in templates), 1)}
            rows: list[Entry] = [(t.person_id, t.template_id) for t in templates]
            # the slow part, while searches go on against the old index and nothing has changed yet
            view = self._build(
                np.arange(1, len(templates) + 1, dtype=np.int64), rows, l2_normalize(vectors), people
            )
            ix.stamp_path(self._index_path).unlink(missing_ok=True)  # the saved index is stale from here on
            self._dirty = True
            with self._db.atomic():
                replace_rows(self._db, snapshot, people)
                self._db.execute("DELETE FROM negatives")
                write_negatives(self._db, snapshot.negatives, [], [])
                set_meta(self._db, version=snapshot.version, embedding_size=snapshot.embedding_size)
            self._version, self._dim = snapshot.version, snapshot.embedding_size
            self._template_count = len(rows)
            self._save(view)
            with self._lock:
                self._view = view
            self._reload_negatives()

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
            label = insert_row(db, "templates", {**row, "embedding": t.embedding})
            changes.add(label, vector, (t.person_id, t.template_id))
            affected.add(t.person_id)
        means = sync_people(db, sorted(affected))
        return means if self._settings.person_match == "mean" else changes

    def _reload_negatives(self) -> None:
        """After a write committed: the negatives from the database (few: capped per person)."""
        negatives = read_negatives(self._db, self._dim)
        with self._lock:
            self._negatives = negatives

    def _apply(self, changes: IndexChanges) -> None:
        """After commit: change the index in place, or rebuild it from the database when that is better."""
        self._template_count = count_rows(self._db, "templates")
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
        self._template_count = count_rows(self._db, "templates")
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
