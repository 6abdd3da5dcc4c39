"""The duplicate-person check: a new embedding against every other person's templates of its model.

Each app's enrollment service keeps one `TemplateIndex`: per model id, an in-memory matrix of all
templates of that model (one unit row per template) with their person ids. Before each check it
revalidates the matrix with one aggregate query: the number of templates of the model and the sum of the
first 32 bits of their ids. When either differs, it fetches the template ids and person ids (16+16 bytes
per template) and the embeddings of the templates it has not seen, and drops the ones that are gone; so
a check costs one index-only aggregate plus one matrix-vector product, and a change costs fetching only
what changed. Templates this replica commits itself are added to its matrix directly (`added`), with the
fingerprint updated the same way, so a bulk job on one replica never refetches.

Limits: the revalidation scans the model's template ids (about 10-20 ms per 100,000 templates) and
the matrix lives in each replica's memory (n x 512 bytes for 128-d: 100,000 templates are 51 MB).
Past a few million templates this wants an ANN index in the database (pgvector) instead.
Erased people have no templates left, so they never match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import anyio.to_thread
import numpy as np
from numpy.typing import NDArray
from psycopg import AsyncConnection

from central.enrollment import repository as repo
from common.pipeline.face import Embedding


@dataclass(frozen=True, slots=True)
class Snapshot:
    """All templates of one model at one moment (immutable: a refresh builds a new one)."""

    fingerprint: tuple[int, int]
    ids: tuple[UUID, ...]
    people: tuple[UUID, ...]
    matrix: NDArray[np.float32]
    codes: NDArray[np.int64]
    """Per row, a number for its person (so masking a person needs no Python loop)."""
    person_codes: dict[UUID, int]

    def best_other(self, embedding: Embedding, person_id: UUID) -> tuple[UUID, float] | None:
        """The most similar template of a person other than `person_id`: (person, similarity)."""
        if not self.ids:
            return None
        scores = self.matrix @ embedding
        others = self.codes != self.person_codes.get(person_id, -1)
        if not others.any():
            return None
        scores = np.where(others, scores, -np.inf)
        best = int(np.argmax(scores))
        return self.people[best], float(scores[best])


@dataclass
class TemplateIndex:
    """The per-app cache of template matrices, one per model id (held by the enrollment service)."""

    snapshots: dict[str, Snapshot] = field(default_factory=dict)

    async def current(self, conn: AsyncConnection[Any], model_id: str, size: int) -> Snapshot:
        """A snapshot that matches the database as `conn` sees it now."""
        fingerprint = await repo.template_fingerprint(conn, model_id)
        cached = self.snapshots.get(model_id)
        if cached is not None and cached.fingerprint == fingerprint:
            return cached
        fresh = await self._refresh(conn, model_id, size, fingerprint, cached)
        self.snapshots[model_id] = fresh
        return fresh

    async def find_duplicate(
        self, conn: AsyncConnection[Any], model_id: str, person_id: UUID, embedding: Embedding
    ) -> tuple[UUID, float] | None:
        """The other person whose template is most similar to `embedding`, with the similarity."""
        snapshot = await self.current(conn, model_id, int(embedding.shape[0]))
        return await anyio.to_thread.run_sync(snapshot.best_other, embedding, person_id)

    def added(self, model_id: str, template_id: UUID, person_id: UUID, embedding: Embedding) -> None:
        """Record a template this replica just committed, so its next check needs no refetch.

        The cached snapshot was validated under the per-model lock just before the insert, so the
        database now holds it plus this row; if anything else changed meanwhile, the fingerprint
        differs at the next check and the snapshot is refreshed (dropping anything not in the table)."""
        cached = self.snapshots.get(model_id)
        if cached is None or cached.matrix.shape[1] != embedding.shape[0] or template_id in cached.ids:
            return
        count, total = cached.fingerprint
        codes = dict(cached.person_codes)
        code = codes.setdefault(person_id, len(codes))
        self.snapshots[model_id] = Snapshot(
            (count + 1, total + id_prefix(template_id)),
            (*cached.ids, template_id),
            (*cached.people, person_id),
            np.vstack([cached.matrix, unit_row(embedding.astype("<f4").tobytes())[None, :]]),
            np.append(cached.codes, np.int64(code)),
            codes,
        )

    async def _refresh(
        self,
        conn: AsyncConnection[Any],
        model_id: str,
        size: int,
        fingerprint: tuple[int, int],
        cached: Snapshot | None,
    ) -> Snapshot:
        rows = await repo.template_owners(conn, model_id)
        known: dict[UUID, NDArray[np.float32]] = {}
        if cached is not None:
            known = {tid: cached.matrix[i] for i, tid in enumerate(cached.ids)}
        missing = [tid for tid, _ in rows if tid not in known]
        if missing:
            fetched = await repo.embeddings(conn, missing)
            known.update({tid: unit_row(blob) for tid, blob in fetched})
        rows = [(tid, pid) for tid, pid in rows if tid in known and known[tid].shape[0] == size]
        matrix = np.zeros((len(rows), size), dtype=np.float32)
        for i, (tid, _) in enumerate(rows):
            matrix[i] = known[tid]
        people = tuple(p for _, p in rows)
        person_codes: dict[UUID, int] = {}
        codes = np.fromiter(
            (person_codes.setdefault(p, len(person_codes)) for p in people), np.int64, len(people)
        )
        return Snapshot(fingerprint, tuple(t for t, _ in rows), people, matrix, codes, person_codes)


def id_prefix(template_id: UUID) -> int:
    """The first 32 bits of an id, as the fingerprint query sums them."""
    return int(template_id.hex[:8], 16)


def unit_row(blob: bytes) -> NDArray[np.float32]:
    """A stored embedding (little-endian float32) as a unit-length row."""
    vector = np.frombuffer(blob, dtype="<f4").astype(np.float32)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector
