"""Enrollment of one photo for one person: the contract the photo routes and the bulk jobs share.

`enroll_photo` answers a `PhotoResult` for every photo, accepted or rejected with a reason; only a
missing (or erased) person raises (NotFound), and infrastructure failures (database, storage) raise
as they do everywhere. Steps: sha256 and the person check (a photo already enrolled for this person
is `duplicate_photo`) → decode under the photo limits and the face pipeline on the enrollment
workers (`bad_image`, `no_face`, `multiple_faces`, `low_quality`, see analysis.py) → duplicate
check against other people (`duplicate_person`, see duplicates.py) → store the bytes, then one
transaction that re-checks duplicates under a per-model lock and writes photo row, template,
gallery changes and audit entry. If that transaction fails, the stored object is deleted again.
Rejected photos are never kept.
"""

from __future__ import annotations

import logging
from typing import Literal
from uuid import UUID

import anyio
import anyio.to_thread
import msgspec

from central.auth.scopes import Principal
from central.enrollment.analysis import AcceptedFace, Rejection, analyse_photo, sha256_hex
from central.enrollment.duplicates import find_duplicate
from central.enrollment.saving import DuplicateFound, PhotoSaved, save_accepted
from central.errors import NotFound
from central.people.repository import get_or_create_person
from central.runtime import Runtime
from common.pipeline.image import ImageLimits

log = logging.getLogger("central.enrollment")

Reason = Literal[
    "no_face", "multiple_faces", "low_quality", "duplicate_person", "bad_image", "duplicate_photo"
]

_CHECK = """
SELECT (SELECT ep.id FROM enrollment_photos ep WHERE ep.person_id = p.id AND ep.sha256 = %s)
  FROM people p WHERE p.id = %s AND p.deleted_at IS NULL
"""


class PhotoResult(msgspec.Struct, frozen=True):
    """The outcome of one photo. `reason` (rejected only): no_face | multiple_faces | low_quality |
    duplicate_person | bad_image | duplicate_photo; `message` says what was wrong and what to do."""

    filename: str
    status: Literal["accepted", "rejected"]
    reason: str | None = None
    message: str | None = None
    photo_id: UUID | None = None
    template_id: UUID | None = None
    quality: float | None = None
    similar_person_id: UUID | None = None


def duplicate_threshold(runtime: Runtime) -> float:
    """FACEGATE_DUPLICATE_THRESHOLD, else the recognizer's match threshold."""
    configured = runtime.settings.duplicate_threshold
    return configured if configured is not None else runtime.pipeline.threshold


async def enroll_photo(
    runtime: Runtime, principal: Principal | None, person_id: UUID, filename: str, data: bytes
) -> PhotoResult:
    """Enroll one photo for an existing person (see the module doc). Counts every outcome in
    `facegate_enrollment_photos_total{outcome}`."""
    result = await _enroll(runtime, principal, person_id, filename, data)
    runtime.metrics.enrollments.labels(result.reason or result.status).inc()
    log.info(
        "enrollment_photo",
        extra={"person_id": str(person_id), "status": result.status, "reason": result.reason},
    )
    return result


async def _enroll(
    runtime: Runtime, principal: Principal | None, person_id: UUID, filename: str, data: bytes
) -> PhotoResult:
    digest = await anyio.to_thread.run_sync(sha256_hex, data)
    async with runtime.pool.connection() as conn:
        row = await (await conn.execute(_CHECK, (digest, person_id))).fetchone()
    if row is None:
        raise NotFound(f"no person {person_id}", code="person_not_found")
    if row[0] is not None:
        return PhotoResult(
            filename, "rejected", "duplicate_photo", "this photo is already enrolled for this person", row[0]
        )
    limits = ImageLimits(
        max_bytes=runtime.settings.max_photo_bytes, max_pixels=runtime.settings.max_photo_pixels
    )
    outcome: AcceptedFace | Rejection = await runtime.run_inference(
        analyse_photo, runtime.pipeline, data, limits
    )
    if isinstance(outcome, Rejection):
        return PhotoResult(filename, "rejected", outcome.reason, outcome.message, quality=outcome.quality)
    threshold = duplicate_threshold(runtime)
    async with runtime.pool.connection() as conn:
        match = await find_duplicate(conn, runtime, outcome.model_id, person_id, outcome.embedding)
    if match is not None and match[1] >= threshold:
        return duplicate_result(filename, outcome, DuplicateFound(*match, threshold))
    try:
        saved: PhotoSaved = await save_accepted(
            runtime, principal, person_id, data=data, digest=digest, face=outcome, threshold=threshold
        )
    except DuplicateFound as found:
        return duplicate_result(filename, outcome, found)
    if saved.duplicate_of is not None:
        return PhotoResult(
            filename,
            "rejected",
            "duplicate_photo",
            "this photo is already enrolled for this person",
            saved.duplicate_of,
        )
    return PhotoResult(filename, "accepted", None, None, saved.photo_id, saved.template_id, outcome.quality)


def duplicate_result(filename: str, face: AcceptedFace, found: DuplicateFound) -> PhotoResult:
    return PhotoResult(
        filename,
        "rejected",
        "duplicate_person",
        f"this face matches person {found.person_id} (similarity {found.similarity:.3f} >= "
        f"{found.threshold:.3f}); enroll it under that person, or check that the photo is right",
        quality=face.quality,
        similar_person_id=found.person_id,
    )


__all__ = ["PhotoResult", "enroll_photo", "get_or_create_person"]
