"""Nearest-neighbour indexes over L2-normalised embeddings: exact (numpy) and approximate (hnswlib).

Both answer the same question, the k entries (integer labels) with the highest cosine similarity
to each query, and both are changed in place (`add`, `remove`); callers serialise access (the
gallery holds a lock around every call). An hnswlib index can be saved beside the gallery database
together with a sidecar `IndexStamp` saying which gallery state it was built for, so a restart
loads it instead of rebuilding when the stamp still matches.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import hnswlib
import msgspec
import numpy as np
from numpy.typing import NDArray

from common.embedding import l2_normalize

log = logging.getLogger(__name__)

IndexKind = Literal["exact", "hnsw"]
Labels = NDArray[np.int64]
Vectors = NDArray[np.float32]


class IndexSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How a gallery is searched (the `gallery.index` section of an edge device file).

    - `space`: hnswlib metric, "cosine" or "ip"; vectors are L2-normalised first, so both rank alike.
    - `m`: hnswlib graph degree (M); more links, better recall, more memory (about 8·M bytes/entry).
    - `ef_construction`: candidate list while building; higher builds slower and better.
    - `ef_search`: candidate list while searching (raised to k when k is larger); the recall knob.
      128 keeps recall@1 at 0.999 up to 1e5 templates; about 1e6 wants 256-512 (bench/README.md).
    - `exact_below`: below this many indexed entries, brute-force numpy search is used instead.
    - `person_match`: "best" indexes every template (a person scores their best template);
      "mean" indexes one L2-normalised mean of each person's normalised templates.
    - `build_batch`, `threads`: hnswlib build in batches of this many vectors on this many
      threads (0: every core); `seed`: hnswlib's level generator, for reproducible builds.
    """

    space: Literal["cosine", "ip"] = "cosine"
    m: int = 16
    ef_construction: int = 200
    ef_search: int = 128
    exact_below: int = 5000
    person_match: Literal["best", "mean"] = "best"
    build_batch: int = 50_000
    threads: int = 0
    seed: int = 100


class IndexStamp(msgspec.Struct, frozen=True, kw_only=True):
    """The sidecar of a saved hnswlib index: the gallery state and parameters it was built for."""

    format: int = 1
    gallery: str
    version: int
    model: str
    dim: int
    entries: int
    person_match: str
    space: str
    m: int
    ef_construction: int


class VectorIndex(Protocol):
    """`search`: per query the min(k, count) best labels and cosine similarities, best first.
    `add`: labels not live in the index (a removed label may come back); `remove`: live labels."""

    kind: IndexKind

    @property
    def count(self) -> int: ...

    def search(self, queries: Vectors, k: int) -> tuple[Labels, Vectors]: ...

    def add(self, labels: Labels, vectors: Vectors) -> None: ...

    def remove(self, labels: Labels) -> None: ...


Entry = tuple[str, str | None]  # what a label names: (person_id, template_id or None for a mean)


@dataclass(frozen=True, slots=True)
class Hit:
    person_id: str
    template_id: str | None  # None with person_match="mean" (the hit is the person's mean)
    similarity: float


def kind_for(entries: int, settings: IndexSettings) -> IndexKind:
    """Exact below `exact_below` entries (and always for none), hnswlib from there on."""
    return "exact" if entries == 0 or entries < settings.exact_below else "hnsw"


def build_index(labels: Labels, vectors: Vectors, settings: IndexSettings, kind: IndexKind) -> VectorIndex:
    """An index over normalised `vectors` (n x d) named by `labels`."""
    if kind == "exact":
        return ExactIndex(labels, vectors)
    return HnswIndex.build(labels, vectors, settings)


class ExactIndex:
    """Brute force: one matrix product per batch of queries. Rows live in a growable buffer."""

    kind: IndexKind = "exact"

    def __init__(self, labels: Labels, vectors: Vectors) -> None:
        # takes ownership of `vectors` when it is already C-contiguous float32 (no copy)
        self._vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._labels = np.array(labels, dtype=np.int64)
        self._n = len(self._labels)
        self._rows = {int(label): row for row, label in enumerate(self._labels)}

    @property
    def count(self) -> int:
        return self._n

    def search(self, queries: Vectors, k: int) -> tuple[Labels, Vectors]:
        k = min(k, self._n)
        out_labels = np.full((len(queries), k), -1, dtype=np.int64)
        out_sims = np.zeros((len(queries), k), dtype=np.float32)
        if k == 0:
            return out_labels, out_sims
        matrix = self._vectors[: self._n]
        for start in range(0, len(queries), 64):  # bounds the n_queries x n_entries product
            sims = queries[start : start + 64] @ matrix.T
            if k < self._n:
                top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            else:
                top = np.tile(np.arange(k), (len(sims), 1))
            top_sims = np.take_along_axis(sims, top, axis=1)
            order = np.argsort(-top_sims, axis=1, kind="stable")
            out_labels[start : start + 64] = self._labels[np.take_along_axis(top, order, axis=1)]
            out_sims[start : start + 64] = np.take_along_axis(top_sims, order, axis=1)
        return out_labels, out_sims

    def add(self, labels: Labels, vectors: Vectors) -> None:
        for label, vector in zip(labels.tolist(), vectors, strict=True):
            row = self._rows.get(label)
            if row is None:
                row = self._append_row()
                self._rows[label] = row
                self._labels[row] = label
            self._vectors[row] = vector

    def remove(self, labels: Labels) -> None:
        for label in labels.tolist():
            row = self._rows.pop(label)
            last = self._n - 1
            if row != last:  # move the last row into the hole
                self._vectors[row] = self._vectors[last]
                self._labels[row] = self._labels[last]
                self._rows[int(self._labels[row])] = row
            self._n = last

    def _append_row(self) -> int:
        if self._n == len(self._labels):
            capacity = max(16, 2 * self._n)
            vectors = np.zeros((capacity, self._vectors.shape[1]), dtype=np.float32)
            vectors[: self._n] = self._vectors[: self._n]
            labels = np.zeros(capacity, dtype=np.int64)
            labels[: self._n] = self._labels[: self._n]
            self._vectors, self._labels = vectors, labels
        self._n += 1
        return self._n - 1


class HnswIndex:
    """hnswlib HNSW graph. Removal marks entries deleted (tombstones stay until the next rebuild)."""

    kind: IndexKind = "hnsw"

    def __init__(self, raw: hnswlib.Index, count: int, settings: IndexSettings) -> None:
        self._raw = raw
        self._count = count
        self._ef = settings.ef_search
        raw.set_ef(self._ef)

    @classmethod
    def build(cls, labels: Labels, vectors: Vectors, settings: IndexSettings) -> HnswIndex:
        raw = hnswlib.Index(space=settings.space, dim=int(vectors.shape[1]))
        raw.init_index(
            max_elements=max(len(labels), 16),
            M=settings.m,
            ef_construction=settings.ef_construction,
            random_seed=settings.seed,
        )
        threads = settings.threads or -1
        for start in range(0, len(labels), settings.build_batch):
            stop = start + settings.build_batch
            raw.add_items(np.ascontiguousarray(vectors[start:stop]), labels[start:stop], num_threads=threads)
        return cls(raw, len(labels), settings)

    @property
    def count(self) -> int:
        return self._count

    @property
    def tombstones(self) -> int:
        return int(self._raw.element_count) - self._count

    @property
    def ef_search(self) -> int:
        return self._ef

    @ef_search.setter
    def ef_search(self, ef: int) -> None:
        self._ef = ef

    def search(self, queries: Vectors, k: int) -> tuple[Labels, Vectors]:
        k = min(k, self._count)
        while k > 0:
            self._raw.set_ef(max(self._ef, k))
            try:
                found, distances = self._raw.knn_query(queries, k=k, num_threads=1)
            except RuntimeError:  # too few live entries reachable past the tombstones: ask for fewer
                k //= 2
                continue
            return found.astype(np.int64), (1.0 - distances).astype(np.float32)
        return np.full((len(queries), 0), -1, dtype=np.int64), np.zeros((len(queries), 0), dtype=np.float32)

    def add(self, labels: Labels, vectors: Vectors) -> None:
        needed = int(self._raw.element_count) + len(labels)
        if needed > self._raw.max_elements:
            self._raw.resize_index(max(needed, 2 * int(self._raw.max_elements)))
        self._raw.add_items(np.ascontiguousarray(vectors), labels, num_threads=1)
        self._count += len(labels)

    def remove(self, labels: Labels) -> None:
        for label in labels.tolist():
            self._raw.mark_deleted(label)
        self._count -= len(labels)

    def save(self, path: Path, stamp: IndexStamp) -> None:
        """Write the index and its sidecar, each to a temporary file renamed into place.

        The old sidecar goes first, so a crash midway leaves no stamp and the next start rebuilds.
        """
        sidecar = stamp_path(path)
        sidecar.unlink(missing_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        self._raw.save_index(str(tmp))
        tmp.replace(path)
        tmp_stamp = sidecar.with_name(sidecar.name + ".tmp")
        tmp_stamp.write_bytes(msgspec.json.encode(stamp))
        tmp_stamp.replace(sidecar)

    @classmethod
    def load(cls, path: Path, expected: IndexStamp, settings: IndexSettings) -> HnswIndex | None:
        """The saved index when its sidecar matches `expected`; None when absent, stale or unreadable."""
        stamp = read_stamp(path)
        if stamp != expected:
            if stamp is not None:
                log.info("gallery_index_stale", extra={"saved": stamp.version, "wanted": expected.version})
            return None
        raw = hnswlib.Index(space=expected.space, dim=expected.dim)
        try:
            raw.load_index(str(path))
        except (RuntimeError, OSError) as err:
            log.warning("gallery_index_unreadable", extra={"path": str(path), "error": str(err)})
            return None
        if raw.element_count < expected.entries:
            return None
        return cls(raw, expected.entries, settings)


def stamp_path(index_path: Path) -> Path:
    return index_path.with_name(index_path.name + ".json")


def read_stamp(index_path: Path) -> IndexStamp | None:
    """The sidecar of a saved index, or None when it or the index file is missing or malformed."""
    try:
        stamp = msgspec.json.decode(stamp_path(index_path).read_bytes(), type=IndexStamp)
    except FileNotFoundError:
        return None
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as err:
        log.warning("gallery_index_stamp_unreadable", extra={"path": str(index_path), "error": str(err)})
        return None
    return stamp if index_path.exists() else None


class LabelledIndex:
    """An index and what its labels name: the unit a gallery searches, changes and swaps."""

    def __init__(self, index: VectorIndex, entries: dict[int, Entry]) -> None:
        self.index, self.entries = index, entries

    @classmethod
    def build(
        cls,
        labels: Labels,
        rows: Sequence[Entry],
        vectors: Vectors,
        people: dict[str, int],
        settings: IndexSettings,
    ) -> LabelledIndex:
        """Index templates (person_match "best") or each person's mean ("mean", `people` labels them)."""
        entries: Sequence[Entry] = rows
        if settings.person_match == "mean":
            labels, entries, vectors = person_means([row[0] for row in rows], vectors, people)
        index = build_index(labels, vectors, settings, kind_for(len(labels), settings))
        return cls(index, dict(zip(labels.tolist(), entries, strict=True)))

    @property
    def kind(self) -> IndexKind:
        return self.index.kind

    @property
    def tombstones(self) -> int:
        return self.index.tombstones if isinstance(self.index, HnswIndex) else 0

    def search(self, queries: Vectors, k: int) -> list[list[Hit]]:
        """The k best entries of each normalised query, best first."""
        labels, sims = self.index.search(queries, k)
        entries = self.entries
        return [
            [Hit(*entries[label], sim) for label, sim in zip(row, row_sims, strict=True) if label >= 0]
            for row, row_sims in zip(labels.tolist(), sims.tolist(), strict=True)
        ]

    def change(self, changes: IndexChanges) -> None:
        """Remove labels, then add (or re-add) labels; the caller holds the lock searches take."""
        self.index.remove(np.array(changes.removed, dtype=np.int64))
        for label in changes.removed:
            del self.entries[label]
        if changes.labels:
            self.index.add(np.array(changes.labels, dtype=np.int64), np.stack(changes.vectors))
            self.entries.update(zip(changes.labels, changes.entries, strict=True))


@dataclass(slots=True)
class IndexChanges:
    """What one write does to an index: `removed` labels go first, then `labels` are (re)added."""

    removed: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    vectors: list[Vectors] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)

    def add(self, label: int, vector: Vectors, entry: Entry) -> None:
        self.labels.append(label)
        self.vectors.append(vector)
        self.entries.append(entry)


def person_means(
    persons: Sequence[str], vectors: Vectors, person_labels: dict[str, int]
) -> tuple[Labels, list[Entry], Vectors]:
    """One L2-normalised mean of each person's normalised templates, labelled by `person_labels`."""
    order = list(person_labels)
    position = {pid: n for n, pid in enumerate(order)}
    sums = np.zeros((len(order), vectors.shape[1]), np.float32)
    np.add.at(sums, np.array([position[p] for p in persons], dtype=np.int64), vectors)
    labels = np.array([person_labels[p] for p in order], dtype=np.int64)
    return labels, [(p, None) for p in order], l2_normalize(sums)
