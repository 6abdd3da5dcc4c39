"""The enrollment service: one photo for one person (the contract the photo route and the bulk jobs
share), and the bulk jobs' API (queue a zip, read a job, list jobs).

`enroll_photo` answers a `PhotoResult` for every photo, accepted or rejected with a reason; only a
missing (or erased) person raises (NotFound), and infrastructure failures (database, storage) raise
as they do everywhere. Steps: sha256 and the person check (a photo already enrolled for this person
is `duplicate_photo`) → decode under the photo limits and the face pipeline on the enrollment
workers (`bad_image`, `no_face`, `multiple_faces`, `low_quality`, see analysis.py) → duplicate
check against other people (`duplicate_person`, see duplicates.py) → keep it. Rejected photos are
never kept.

Keeping an accepted photo: the object is written first (outside the transaction: no lock is held
during the upload); the transaction then locks the person row (FOR SHARE: an erase, which takes FOR
UPDATE, waits or has won), takes a per-model advisory lock so concurrent enrollments of one model are
checked one at a time, re-checks the duplicate-person and duplicate-photo rules, and inserts the photo
row, the template, the gallery changes and the audit entry. Whatever makes the transaction fail (an
erased person, a duplicate found under the lock, a database error, a cancelled request), the object is
deleted again before the error goes on: nothing is half-written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID, uuid4

import anyio
import anyio.to_thread
import msgspec
import numpy as np
import psycopg
from psycopg import AsyncConnection

from central import audit
from central.cleanup.service import CleanupService
from central.db.pool import AsyncPool
from central.enrollment import repository as repo
from central.enrollment.analysis import AcceptedFace, Rejection, analyse_photo, content_type, sha256_hex
from central.enrollment.archive import plan_archive
from central.enrollment.duplicates import TemplateIndex
from central.enrollment.jobs_queue import JobQueue, enqueue
from central.enrollment.schemas import JobRead, JobSummary, PhotoResult
from central.enrollment.settings import EnrollmentSettings
from central.errors import NotFound
from central.galleries.service import GalleryService
from central.metrics import Metrics
from central.people.service import PeopleService
from central.principal import Principal, Scope, require
from central.schemas import Page
from central.storage import ObjectStore, StorageError, photo_key
from central.storage.keys import job_key
from common.ids import uuid7
from common.pipeline.pipeline import FacePipeline

log = logging.getLogger("central.enrollment")
jobs_log = logging.getLogger("central.enrollment.jobs")

LEASE_S = 60.0
"""How long a job's claim lasts without renewal (central/enrollment/workers.py renews it)."""

_T = TypeVar("_T")


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


@dataclass(frozen=True, slots=True)
class NewPhoto:
    """The rows one accepted photo becomes."""

    person_id: UUID
    photo_id: UUID
    template_id: UUID
    key: str
    digest: str
    face: AcceptedFace


def embedding_bytes(embedding: np.ndarray[Any, Any]) -> bytes:
    """The stored form of an embedding: little-endian float32."""
    return np.ascontiguousarray(embedding, dtype="<f4").tobytes()


class EnrollmentService:
    """Enrollment of one app: photos through `pipeline` on `executor`, duplicates against `index`."""

    def __init__(  # noqa: PLR0917  # one argument per thing enrollment needs (central/lifespan.py)
        self,
        pool: AsyncPool,
        store: ObjectStore,
        pipeline: FacePipeline,
        executor: ThreadPoolExecutor,
        metrics: Metrics,
        settings: EnrollmentSettings,
        people: PeopleService,
        galleries: GalleryService,
        cleanup: CleanupService,
        queue: JobQueue,
    ) -> None:
        self.pool = pool
        self.store = store
        self.pipeline = pipeline
        self.executor = executor
        self.metrics = metrics
        self.settings = settings
        self.people = people
        self.galleries = galleries
        self.cleanup = cleanup
        self.queue = queue
        self.index = TemplateIndex()

    def duplicate_threshold(self) -> float:
        """FACEGATE_DUPLICATE_THRESHOLD, else the recognizer's match threshold."""
        configured = self.settings.duplicate_threshold
        return configured if configured is not None else self.pipeline.threshold

    @staticmethod
    def require_writer(principal: Principal) -> None:
        """Forbidden unless an operator key without a site restriction (photos and jobs enrol people,
        who belong to no site). Routes check it before they read a body."""
        require(principal, Scope.OPERATOR, None)

    async def require_person(self, person_id: UUID) -> None:
        """NotFound `person_not_found` unless the live person exists."""
        await self.people.get(person_id)

    async def run_inference(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run face work on the enrollment worker pool, off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def enroll_photo(
        self, principal: Principal | None, person_id: UUID, filename: str, data: bytes
    ) -> PhotoResult:
        """Enroll one photo for an existing person (see the module doc). Counts every outcome in
        `facegate_enrollment_photos_total{outcome}`."""
        result = await self._enroll(principal, person_id, filename, data)
        self.metrics.enrollments.labels(result.reason or result.status).inc()
        log.info(
            "enrollment_photo",
            extra={"person_id": str(person_id), "status": result.status, "reason": result.reason},
        )
        return result

    async def _enroll(
        self, principal: Principal | None, person_id: UUID, filename: str, data: bytes
    ) -> PhotoResult:
        digest = await anyio.to_thread.run_sync(sha256_hex, data)
        async with self.pool.connection() as conn:
            exists, enrolled = await repo.photo_check(conn, person_id, digest)
        if not exists:
            raise NotFound(f"no person {person_id}", code="person_not_found")
        if enrolled is not None:
            return PhotoResult(
                filename,
                "rejected",
                "duplicate_photo",
                "this photo is already enrolled for this person",
                enrolled,
            )
        outcome = await self.run_inference(analyse_photo, self.pipeline, data, self.settings.image)
        if isinstance(outcome, Rejection):
            return PhotoResult(filename, "rejected", outcome.reason, outcome.message, quality=outcome.quality)
        threshold = self.duplicate_threshold()
        async with self.pool.connection() as conn:
            match = await self.index.find_duplicate(conn, outcome.model_id, person_id, outcome.embedding)
        if match is not None and match[1] >= threshold:
            return duplicate_result(filename, outcome, DuplicateFound(*match, threshold))
        try:
            saved = await self.save_accepted(
                principal, person_id, data=data, digest=digest, face=outcome, threshold=threshold
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
        return PhotoResult(
            filename, "accepted", None, None, saved.photo_id, saved.template_id, outcome.quality
        )

    async def save_accepted(
        self,
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
        await anyio.to_thread.run_sync(self.store.put, new.key, data, content_type(data))
        try:
            async with self.pool.connection() as conn:
                await self._record(conn, principal, new, threshold)
        except _PhotoExists as exists:
            await self.discard(person_id, new.key)
            return PhotoSaved(None, None, exists.photo_id)
        except BaseException:
            await self.discard(person_id, new.key)
            raise
        self.index.added(face.model_id, new.template_id, person_id, face.embedding)
        return PhotoSaved(new.photo_id, new.template_id)

    async def _record(
        self, conn: AsyncConnection[Any], principal: Principal | None, new: NewPhoto, threshold: float
    ) -> None:
        face = new.face
        await self.people.lock(conn, new.person_id, share=True)
        await repo.lock_model(conn, face.model_id)
        match = await self.index.find_duplicate(conn, face.model_id, new.person_id, face.embedding)
        if match is not None and match[1] >= threshold:
            raise DuplicateFound(match[0], match[1], threshold)
        existing = await repo.existing_photo(conn, new.person_id, new.digest)
        if existing is not None:
            raise _PhotoExists(existing)
        quality = min(1.0, max(0.0, face.quality))
        size = (face.width, face.height)
        await repo.insert_photo(conn, new.photo_id, new.person_id, new.key, new.digest, size, quality)
        embedding = embedding_bytes(face.embedding)
        await repo.insert_template(
            conn, new.template_id, new.person_id, face.model_id, embedding, new.photo_id
        )
        versions = await self.galleries.record_person_change(conn, new.person_id, upserts=[new.template_id])
        details = {
            "photo_id": str(new.photo_id),
            "template_id": str(new.template_id),
            "quality": round(quality, 4),
            "gallery_versions": versions,
        }
        await audit.record(conn, principal, "person.photo_enroll", "person", new.person_id, details=details)

    async def discard(self, person_id: UUID, key: str) -> None:
        """Delete an object whose rows were not written; shielded so a cancelled request still cleans up.
        If the store refuses, the key is queued in `pending_deletions` (retried by the person's next
        template deletion or erase)."""
        with anyio.CancelScope(shield=True):
            try:
                await anyio.to_thread.run_sync(self.store.delete, key)
            except StorageError as err:
                log.error("enrollment_object_orphaned", extra={"key": key, "error": str(err)})
                self.metrics.object_delete_failures.inc()
                try:
                    async with self.pool.connection() as conn:
                        await self.cleanup.queue(conn, person_id, [key])
                except psycopg.Error as db_err:
                    log.error("enrollment_object_not_queued", extra={"key": key, "error": str(db_err)})

    # --- bulk jobs --------------------------------------------------------------------------------------

    async def create_job(self, principal: Principal, data: bytes) -> JobRead:
        """Check the zip's directory, store it and queue a job; the workers enrol its photos."""
        self.require_writer(principal)
        plan = await anyio.to_thread.run_sync(plan_archive, data, self.settings.archive)
        job_id = UUID(uuid7())
        key = job_key(job_id)
        await anyio.to_thread.run_sync(self.store.put, key, data, "application/zip")
        try:
            async with self.pool.connection() as conn:
                job = await repo.insert_job(
                    conn,
                    job_id,
                    created_by=audit.actor(principal),
                    object_key=key,
                    plan=plan,
                    lease_s=LEASE_S,
                )
                details = {
                    "photos": len(plan.photos),
                    "people": len(plan.people),
                    "skipped": len(plan.skipped),
                }
                await audit.record(
                    conn, principal, "enrollment_job.create", "enrollment_job", job_id, details=details
                )
        except BaseException:
            await self._forget(key)
            raise
        await enqueue(self.queue, job_id)
        jobs_log.info("enrollment_job_queued", extra={"job_id": str(job_id), "photos": len(plan.photos)})
        return job

    async def read_job(
        self, principal: Principal, job_id: UUID, results_after: int, results_limit: int
    ) -> JobRead:
        require(principal, Scope.VIEWER, None)
        async with self.pool.connection() as conn:
            job = await repo.get_job(conn, job_id, results_after, results_limit)
        if job is None:
            raise NotFound(f"no enrollment job {job_id}", code="job_not_found")
        return shown_to(principal, job)

    async def list_jobs(self, principal: Principal, limit: int, cursor: str | None) -> Page:
        require(principal, Scope.VIEWER, None)
        async with self.pool.connection() as conn:
            jobs, following = await repo.list_jobs(conn, limit, cursor)
        items: list[JobSummary] = [shown_to(principal, job) for job in jobs]
        return Page(items, following)

    async def get_or_create_person(
        self, principal: Principal | None, external_id: str, display_name: str
    ) -> UUID:
        """The people service's get-or-create, for the jobs (central/people/service.py)."""
        return await self.people.get_or_create(principal, external_id, display_name)

    async def _forget(self, key: str) -> None:
        try:
            await anyio.to_thread.run_sync(self.store.delete, key)
        except StorageError as err:
            jobs_log.warning("enrollment_job_archive_not_deleted", extra={"key": key, "error": str(err)})


_Job = TypeVar("_Job", bound=JobSummary)


def shown_to(principal: Principal, job: _Job) -> _Job:
    """`job` as `principal` may see it: a key prefix in `created_by` only for admins (a prefix is what a
    wrong-secret flood aims at), `key` for everyone else."""
    if principal.scope is Scope.ADMIN or not job.created_by.startswith("key:"):
        return job
    return msgspec.structs.replace(job, created_by="key")


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
