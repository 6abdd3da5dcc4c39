"""One claimed job being processed: people created, photos enrolled one result each, the job finished.

Photos that already have a result (a job taken over from a replica that died) are skipped; a photo
enrolled before the takeover but without a result comes back as `duplicate_photo`, so a re-run is
harmless. A photo's failure is its result; database and storage failures abort the run (the job is
released and retried).
"""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

import anyio.to_thread
import psycopg

from central import audit
from central.enrollment import repository as repo
from central.enrollment.archive import ArchivePlan, PhotoEntry, Unpacker, open_archive
from central.enrollment.schemas import JobResult, JobStatus
from central.enrollment.service import EnrollmentService
from central.errors import ApiError
from central.principal import Principal, Scope
from central.storage import StorageError
from common.errors import FacegateError, ImageError

log = logging.getLogger("central.enrollment.jobs")


class LeaseLostError(FacegateError):
    """Another replica took the job over (this one was too slow to renew its lease)."""


def job_principal(created_by: str) -> Principal | None:
    """The creating key as the actor of the job's audit entries (`key:<prefix>`), else system."""
    kind, _, ident = created_by.partition(":")
    return Principal("key", ident, Scope.OPERATOR) if kind == "key" and ident else None


class JobRun:
    def __init__(
        self, enrollment: EnrollmentService, job: repo.ClaimedJob, worker: str, photos: asyncio.Semaphore
    ) -> None:
        self.enrollment = enrollment
        self.pool = enrollment.pool
        self.job = job
        self.worker = worker
        self.photos = photos
        self.principal = job_principal(job.created_by)
        self.lost = False

    async def enrol(self, data: bytes, plan: ArchivePlan) -> None:
        """A result for every photo of `plan` that has none yet; LeaseLostError when another replica took
        the job over (the photos in flight finish first)."""
        async with self.pool.connection() as conn:
            done = await repo.done_seqs(conn, self.job.id)
        people: dict[str, asyncio.Task[UUID | ApiError]] = {}
        with open_archive(data) as archive:
            unpacker = Unpacker(archive, plan.unpacked_bytes)
            async with asyncio.TaskGroup() as group:
                for entry in (e for e in plan.photos if e.seq not in done):
                    if entry.external_id not in people:  # created once, while other photos run
                        people[entry.external_id] = group.create_task(self.person(entry.external_id, plan))
                    await self.photos.acquire()
                    if self.lost:
                        self.photos.release()
                        break
                    group.create_task(self.photo(unpacker, entry, people[entry.external_id]))
        if self.lost:
            raise LeaseLostError(f"job {self.job.id} was taken over by another replica")

    async def person(self, external_id: str, plan: ArchivePlan) -> UUID | ApiError:
        try:
            return await self.enrollment.get_or_create_person(
                self.principal, external_id, plan.people[external_id]
            )
        except ApiError as err:  # refused id, or erased while looked up: its photos say so
            return err

    async def photo(
        self, unpacker: Unpacker, entry: PhotoEntry, person: asyncio.Task[UUID | ApiError]
    ) -> None:
        try:
            result = await self.outcome(unpacker, entry, await person)
            async with self.pool.connection() as conn:
                await repo.record_result(conn, self.job.id, result)
        finally:
            self.photos.release()

    async def outcome(self, unpacker: Unpacker, entry: PhotoEntry, person: UUID | ApiError) -> JobResult:
        if isinstance(person, ApiError):
            return rejected(entry, person.code, str(person))
        try:
            data = await anyio.to_thread.run_sync(unpacker.photo, entry)
            photo = await self.enrollment.enroll_photo(self.principal, person, entry.filename, data)
        except ImageError as err:
            return rejected(entry, "bad_image", str(err))
        except ApiError as err:  # e.g. the person was erased while the job ran
            return rejected(entry, err.code, str(err))
        except (psycopg.Error, StorageError, FacegateError):
            raise  # infrastructure: abort the run, the job is retried
        except Exception as err:  # top of the per-photo loop: this photo fails, the job goes on
            log.exception("enrollment_job_photo_failed", extra={"job_id": str(self.job.id), "seq": entry.seq})
            return rejected(
                entry, "error", f"the server failed on this photo ({type(err).__name__}); retry it"
            )
        return JobResult(
            entry.seq, entry.external_id, entry.filename, photo.status, photo.reason, photo.message,
            photo.photo_id, photo.template_id, photo.quality, photo.similar_person_id,
        )  # fmt: skip

    async def finish(self, status: JobStatus, error: str | None) -> None:
        """Mark the job finished (audited) and delete its archive; nothing if another replica has it."""
        async with self.pool.connection() as conn:
            mine = await repo.finish_job(conn, self.job.id, self.worker, status, error)
            if mine:
                details = {"status": status, "error": error} if error else {"status": status}
                await audit.record(
                    conn,
                    self.principal,
                    "enrollment_job.finish",
                    "enrollment_job",
                    self.job.id,
                    details=details,
                )
        if not mine:
            raise LeaseLostError(f"job {self.job.id} was taken over by another replica")
        log.info("enrollment_job_finished", extra={"job_id": str(self.job.id), "status": status})
        try:
            await anyio.to_thread.run_sync(self.enrollment.store.delete, self.job.object_key)
        except StorageError as err:  # a leftover archive; the job itself is finished
            log.warning(
                "enrollment_job_archive_not_deleted", extra={"job_id": str(self.job.id), "error": str(err)}
            )


def rejected(entry: PhotoEntry, reason: str, message: str) -> JobResult:
    return JobResult(entry.seq, entry.external_id, entry.filename, "rejected", reason, message)
