"""The job workers of one replica: take job ids from the queue, claim, enrol, finish; sweep stale leases.

`JobWorkers.start()` returns the asyncio tasks (JOB_WORKERS takers and one sweeper), which
central/lifespan.py owns and cancels at shutdown. A taken id is claimed in PostgreSQL (a duplicate or a
job another replica holds is skipped), its zip read from the object store and planned again, and its
photos enrolled through the enrollment service's `enroll_photo` with `photos_in_flight` photos at a
time per replica (inference itself runs on the FACEGATE_ENROLL_WORKERS threads). A lease
(LEASE_S, renewed every RENEW_S) marks the job as held; the sweep (at start and every SWEEP_S)
enqueues again jobs whose lease expired, so a job whose replica died is finished by another.
On a clean shutdown a running job is released at once. See docs/central-enrollment-jobs.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from uuid import UUID

import anyio.to_thread

from central.enrollment import repository as repo
from central.enrollment.archive import plan_archive
from central.enrollment.jobs_queue import JobQueue, enqueue
from central.enrollment.jobs_run import JobRun, LeaseLostError
from central.enrollment.service import LEASE_S, EnrollmentService
from central.errors import ApiError
from central.storage import ObjectNotFound

log = logging.getLogger("central.enrollment.jobs")

JOB_WORKERS = 2
RENEW_S = 15.0
SWEEP_S = 30.0
TAKE_TIMEOUT_S = 1.0
MAX_ATTEMPTS = 5


class JobWorkers:
    """The workers of one replica, taking ids from `queue` (the enrollment service enqueues them)."""

    def __init__(self, enrollment: EnrollmentService, queue: JobQueue) -> None:
        self.enrollment = enrollment
        self.pool = enrollment.pool
        self.queue = queue
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.photos = asyncio.Semaphore(enrollment.settings.photos_in_flight)

    def start(self) -> list[asyncio.Task[None]]:
        tasks = [asyncio.create_task(self.work(), name=f"enrollment-job-{n}") for n in range(JOB_WORKERS)]
        tasks.append(asyncio.create_task(self.sweep(), name="enrollment-job-sweep"))
        return tasks

    async def sweep(self) -> None:
        while True:
            try:
                async with self.pool.connection() as conn:
                    stale = await repo.stale_jobs(conn, LEASE_S)
                for job_id in stale:
                    log.info("enrollment_job_requeued", extra={"job_id": str(job_id)})
                    await enqueue(self.queue, job_id)
            except Exception:  # top of a worker loop: log and try again at the next period
                log.exception("enrollment_job_sweep_failed")
            await asyncio.sleep(SWEEP_S)

    async def work(self) -> None:
        while True:
            job_id = await self.queue.take(TAKE_TIMEOUT_S)
            if job_id is None:
                continue
            try:
                await self.run(job_id)
            except Exception:  # top of a worker loop: the job's lease expires and it is retried
                log.exception("enrollment_job_crashed", extra={"job_id": str(job_id)})

    async def run(self, job_id: UUID) -> None:
        """Claim and process one job (nothing when another worker holds it or it is finished)."""
        async with self.pool.connection() as conn:
            claimed = await repo.claim_job(conn, job_id, self.worker_id, LEASE_S)
        if claimed is None:
            return
        log.info("enrollment_job_started", extra={"job_id": str(job_id), "attempt": claimed.attempts})
        run = JobRun(self.enrollment, claimed, self.worker_id, self.photos)
        if claimed.attempts > MAX_ATTEMPTS:
            await run.finish("failed", f"gave up after {MAX_ATTEMPTS} attempts (see the server log)")
            return
        renewer = asyncio.create_task(self.keep_lease(run), name=f"enrollment-job-lease-{job_id}")
        try:
            await self.process(run)
        except LeaseLostError:
            log.warning("enrollment_job_lease_lost", extra={"job_id": str(job_id)})
        except BaseException:
            await asyncio.shield(self.release(run))
            raise
        finally:
            renewer.cancel()

    async def process(self, run: JobRun) -> None:
        try:
            data = await anyio.to_thread.run_sync(self.enrollment.store.get, run.job.object_key)
            plan = await anyio.to_thread.run_sync(plan_archive, data, self.enrollment.settings.archive)
        except ObjectNotFound:
            await run.finish("failed", "the uploaded archive is gone from object storage; upload it again")
            return
        except ApiError as err:  # limits lowered since the upload, or a corrupt stored object
            await run.finish("failed", f"the archive cannot be read: {err}")
            return
        await run.enrol(data, plan)
        await run.finish("done", None)

    async def keep_lease(self, run: JobRun) -> None:
        while not run.lost:
            await asyncio.sleep(RENEW_S)
            try:
                async with self.pool.connection() as conn:
                    run.lost = not await repo.renew_lease(conn, run.job.id, self.worker_id, LEASE_S)
            except Exception:  # top of a loop: try again; the lease lasts several periods
                log.exception("enrollment_job_renew_failed", extra={"job_id": str(run.job.id)})

    async def release(self, run: JobRun) -> None:
        try:
            async with self.pool.connection() as conn:
                await repo.release_job(conn, run.job.id, self.worker_id)
        except Exception:  # shutting down or failing: the lease expires and the sweep takes over
            log.exception("enrollment_job_release_failed", extra={"job_id": str(run.job.id)})
        else:
            log.info("enrollment_job_released", extra={"job_id": str(run.job.id)})


__all__ = ["JobWorkers"]
