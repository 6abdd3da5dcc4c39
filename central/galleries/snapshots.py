"""Gallery snapshots: the whole gallery at one version, built by replaying the change log, stored once.

The snapshot of version v holds the templates the log's versions 1..v leave in the gallery
(central/galleries/replay.py), each with its person id and embedding, encoded as one MessagePack
document (common.messages.Snapshot, "facegate.gallery-snapshot/1.1"). It is read in one REPEATABLE READ
transaction, so it is consistent even while changes are appended. Its `created` time is the time
version v was appended (the gallery's creation for version 0) and templates are sorted by id, so
building one version twice gives the same bytes and sha256, unless negatives changed in between: 1.1
adds the negative examples its people have when it is built (sorted by id). A negative added after
version v is in a later delta too, which an edge applies idempotently (replace by id).

Stored under `snapshots/{gallery}/{version}.msgpack` with a `snapshots` row (sha256, size, count; its SQL
is in central/galleries/repository.py) and reused: a stored object is read back and checked against the
row's sha256 (a missing or different object is logged and rebuilt). A version whose templates were
deleted since cannot be rebuilt: Gone (410), unless it was stored before.

Cost: replay is linear in the log (the change bodies of 1..v are held in memory); the build holds the
templates' embeddings and the encoded file in memory at once, about 2 x (embedding bytes + 100) per
template (~1.3 GB for a million 512-d templates). Encoding and hashing run in a worker thread.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from psycopg import AsyncConnection

from central.db.pool import AsyncPool
from central.errors import Gone, NotFound
from central.galleries import repository as repo
from central.galleries.replay import replay, upserts_without_owner
from central.galleries.repository import Gallery
from central.galleries.schemas import SnapshotRead
from central.storage import ObjectNotFound, ObjectStore, snapshot_key
from common.errors import FacegateError
from common.messages import Negative, Snapshot, SnapshotTemplate, encode_snapshot
from common.models.manifest import DEFAULT_MODELS, ModelManifest

log = logging.getLogger("central.galleries.snapshots")

SNAPSHOT_MEDIA_TYPE = "application/vnd.facegate.gallery-snapshot+msgpack"


class SnapshotBuildError(FacegateError):
    """The stored templates cannot form a snapshot (mixed embedding sizes): a bug or a damaged row."""


@dataclass(frozen=True, slots=True)
class SnapshotFile:
    info: SnapshotRead
    data: bytes


class Snapshots:
    """Builds, stores and reads back the snapshots of one app's galleries. `recognizer` is the manifest of
    the model central enrolls with (the embedding size of an empty snapshot of its galleries)."""

    def __init__(self, pool: AsyncPool, store: ObjectStore, recognizer: ModelManifest | None) -> None:
        self.pool = pool
        self.store = store
        self.recognizer = recognizer

    async def file(self, gallery: Gallery, version: int) -> SnapshotFile:
        """The stored snapshot of `gallery` at `version` (0..current), built and stored first if need be."""
        if not 0 <= version <= gallery.current_version:
            raise NotFound(
                f"gallery {gallery.id!r} is at version {gallery.current_version}; "
                f"version {version} does not exist (omit ?version= for the current one)"
            )
        async with self.pool.connection() as conn:
            info = await repo.stored_snapshot(conn, gallery, version)
        if info is not None:
            data = await read_verified(self.store, info)
            if data is not None:
                return SnapshotFile(info, data)
        return await self.build_and_store(gallery, version)

    async def build_and_store(self, gallery: Gallery, version: int) -> SnapshotFile:
        """Build the snapshot, put it in the object store, then record (or replace) its row."""
        snapshot = await self.build(gallery, version)
        data, digest = await anyio.to_thread.run_sync(_encode, snapshot)
        key = snapshot_key(gallery.id, version)
        await anyio.to_thread.run_sync(self.store.put, key, data, SNAPSHOT_MEDIA_TYPE)
        async with self.pool.connection() as conn:
            created = await repo.record_snapshot(
                conn, gallery.id, version, key, digest, len(data), len(snapshot.templates)
            )
        log.info(
            "snapshot_stored",
            extra={
                "gallery": gallery.id,
                "version": version,
                "templates": len(snapshot.templates),
                "bytes": len(data),
            },
        )
        info = SnapshotRead(
            gallery.id, version, digest, key, len(snapshot.templates), len(data), gallery.model_id, created
        )
        return SnapshotFile(info, data)

    async def build(self, gallery: Gallery, version: int) -> Snapshot:
        """Replay versions 1..`version` and load their templates, in one REPEATABLE READ transaction.

        Gone when a template the version holds was deleted since."""
        async with self.pool.connection() as conn:
            await repo.begin_snapshot_read(conn)
            created = await repo.version_time(conn, gallery.id, version)
            if created is None:
                raise NotFound(f"gallery {gallery.id!r} was deleted")
            bodies = await repo.change_bodies(conn, gallery.id, version)
            missing = sorted(upserts_without_owner(bodies))
            known = await repo.template_owners(conn, missing) if missing else {}
            held = await anyio.to_thread.run_sync(replay, bodies, known)
            rows = await repo.snapshot_templates(conn, sorted(held), gallery.model_id)
            people = sorted({p for _, p, _, _ in rows})
            negatives = await repo.snapshot_negatives(conn, people, gallery.model_id) if people else []
            size = rows[0][2] if rows else await self._embedding_size(conn, gallery.model_id)
        if len(rows) != len(held):
            raise Gone(
                f"the snapshot of gallery {gallery.id!r} version {version} cannot be rebuilt: "
                f"{len(held) - len(rows)} of its templates were deleted since; fetch the current version "
                f"({gallery.current_version} or later) instead"
            )
        return Snapshot(
            gallery=gallery.id,
            version=version,
            model=gallery.model_id,
            embedding_size=size,
            created=created,
            templates=[SnapshotTemplate(person_id=p, template_id=t, embedding=e) for t, p, _, e in rows],
            negatives=[Negative(person_id=p, negative_id=n, embedding=e) for n, p, e in negatives],
        )

    async def _embedding_size(self, conn: AsyncConnection[Any], model_id: str) -> int:
        """The embedding size of `model_id` for an empty snapshot: of any template of it, else a manifest."""
        stored = await repo.embedding_size_of(conn, model_id)
        if stored is not None:
            return stored
        if self.recognizer is not None and self.recognizer.id == model_id:
            return self.recognizer.embedding_size
        return next((m.embedding_size for m in DEFAULT_MODELS if m.id == model_id), 0)


async def read_verified(store: ObjectStore, info: SnapshotRead) -> bytes | None:
    """The stored bytes, or None (logged) when the object is missing or its sha256 is not the row's."""
    try:
        data = await anyio.to_thread.run_sync(store.get, info.object_key)
    except ObjectNotFound:
        log.warning("snapshot_object_missing", extra={"gallery": info.gallery, "version": info.version})
        return None
    actual = await anyio.to_thread.run_sync(_sha256, data)
    if actual != info.sha256:
        log.error(
            "snapshot_sha256_mismatch",
            extra={"gallery": info.gallery, "version": info.version, "stored": info.sha256, "actual": actual},
        )
        return None
    return data


def _encode(snapshot: Snapshot) -> tuple[bytes, str]:
    sizes = {len(t.embedding) for t in snapshot.templates}
    if sizes and sizes != {4 * snapshot.embedding_size}:
        raise SnapshotBuildError(
            f"gallery {snapshot.gallery} version {snapshot.version}: templates of mixed embedding sizes"
        )
    data = encode_snapshot(snapshot)
    return data, _sha256(data)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
