"""Keeping an accepted photo: store its bytes, then write everything else in one transaction.

The object is written first (outside the transaction: no lock is held during the upload); the
transaction then locks the person row (FOR SHARE: an erase, which takes FOR UPDATE, waits or has
won), takes a per-model advisory lock so concurrent enrollments of one model are checked one at
a time, re-checks the duplicate-person and duplicate-photo rules, and inserts the photo row, the
template, the gallery changes and the audit entry. Whatever makes the transaction fail (an erased
person, a duplicate found under the lock, a database error, a cancelled request), the object is
deleted again before the error goes on: nothing is half-written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import anyio
import anyio.to_thread
import numpy as np
import psycopg
from psycopg import AsyncConnection

from central import audit
from central.auth.scopes import Principal
from central.enrollment.analysis import AcceptedFace, content_type
from central.enrollment.duplicates import find_duplicate, index_for
from central.galleries.changes import record_person_change
from central.people.cleanup import queue_deletions
from central.people.repository import lock_person
from central.runtime import Runtime
from central.storage import StorageError, photo_key

log = logging.getLogger("central.enrollment")

_LOCK_MODEL = "SELECT pg_advisory_xact_lock(hashtext(%s))"
_EXISTING = "SELECT id FROM enrollment_photos WHERE person_id = %s AND sha256 = %s"
_INSERT_PHOTO = """
INSERT INTO enrollment_photos (id, person_id, object_key, sha256, width, height, quality, status)
VALUES (%s, %s, %s, %s, %s, %s, %s, 'accepted')
"""
_INSERT_TEMPLATE = """
INSERT INTO templates (id, person_id, model_id, embedding_size, embedding, source_photo_id)
VALUES (%s, %s, %s, %s, %s, %s)
"""


class DuplicateFound(Exception):  # noqa: N818  # a control-flow signal that rolls the transaction back
    """The face matches another person's template at or above the threshold."""

    def __init__(self, person_id: UUID, similarity: float, threshold: float) -> None:
        super().__init__(f"matches person {person_id}")
        self.person_id = person_id
        self.similarity = similarity
        self.threshold = threshold


class _PhotoExists(Exception):  # noqa: N818
    def __init__(self, photo_id: UUID) -> None:
        super().__init__(str(photo_id))
        self.photo_id = photo_id


@dataclass(frozen=True, slots=True)
class PhotoSaved:
    photo_id: UUID | None
    template_id: UUID | None
    duplicate_of: UUID | None = None
    """Set instead of the ids when the same photo was enrolled for the person meanwhile."""


def embedding_bytes(embedding: np.ndarray[Any, Any]) -> bytes:
    """The stored form of an embedding: little-endian float32."""
    return np.ascontiguousarray(embedding, dtype="<f4").tobytes()


@dataclass(frozen=True, slots=True)
class NewPhoto:
    """The rows one accepted photo becomes."""

    person_id: UUID
    photo_id: UUID
    template_id: UUID
    key: str
    digest: str
    face: AcceptedFace


async def save_accepted(
    runtime: Runtime,
    principal: Principal | None,
    person_id: UUID,
    *,
    data: bytes,
    digest: str,
    face: AcceptedFace,
    threshold: float,
) -> PhotoSaved:
    """Store and record an accepted photo (see the module doc). Raises DuplicateFound, NotFound."""
    photo_id = uuid4()
    new = NewPhoto(person_id, photo_id, uuid4(), photo_key(person_id, photo_id), digest, face)
    await anyio.to_thread.run_sync(runtime.store.put, new.key, data, content_type(data))
    try:
        async with runtime.pool.connection() as conn:
            await _record(conn, runtime, principal, new, threshold)
    except _PhotoExists as exists:
        await discard(runtime, person_id, new.key)
        return PhotoSaved(None, None, exists.photo_id)
    except BaseException:
        await discard(runtime, person_id, new.key)
        raise
    index_for(runtime).added(face.model_id, new.template_id, person_id, face.embedding)
    return PhotoSaved(new.photo_id, new.template_id)


async def _record(
    conn: AsyncConnection[Any], runtime: Runtime, principal: Principal | None, new: NewPhoto, threshold: float
) -> None:
    face = new.face
    await lock_person(conn, new.person_id, share=True)
    await conn.execute(_LOCK_MODEL, (f"facegate.templates:{face.model_id}",))
    match = await find_duplicate(conn, runtime, face.model_id, new.person_id, face.embedding)
    if match is not None and match[1] >= threshold:
        raise DuplicateFound(match[0], match[1], threshold)
    existing = await (await conn.execute(_EXISTING, (new.person_id, new.digest))).fetchone()
    if existing is not None:
        raise _PhotoExists(existing[0])
    quality = min(1.0, max(0.0, face.quality))
    await conn.execute(
        _INSERT_PHOTO,
        (new.photo_id, new.person_id, new.key, new.digest, face.width, face.height, quality),
    )
    await conn.execute(
        _INSERT_TEMPLATE,
        (
            new.template_id,
            new.person_id,
            face.model_id,
            face.embedding.shape[0],
            embedding_bytes(face.embedding),
            new.photo_id,
        ),
    )
    versions = await record_person_change(conn, new.person_id, upserts=[new.template_id])
    details = {
        "photo_id": str(new.photo_id),
        "template_id": str(new.template_id),
        "quality": round(quality, 4),
        "gallery_versions": versions,
    }
    await audit.record(conn, principal, "person.photo_enroll", "person", new.person_id, details=details)


async def discard(runtime: Runtime, person_id: UUID, key: str) -> None:
    """Delete an object whose rows were not written; shielded so a cancelled request still cleans up.
    If the store refuses, the key is queued in `pending_deletions` (retried by the person's next
    template deletion or erase)."""
    with anyio.CancelScope(shield=True):
        try:
            await anyio.to_thread.run_sync(runtime.store.delete, key)
        except StorageError as err:
            log.error("enrollment_object_orphaned", extra={"key": key, "error": str(err)})
            runtime.metrics.object_delete_failures.inc()
            try:
                async with runtime.pool.connection() as conn:
                    await queue_deletions(conn, person_id, [key])
            except psycopg.Error as db_err:
                log.error("enrollment_object_not_queued", extra={"key": key, "error": str(db_err)})
