"""HTTP routes of this package (mounted under /api/v1 by central/app.py): bulk enrollment jobs.

POST /enrollment-jobs takes a zip (raw `application/zip` body, or multipart file field `archive`),
checks its directory, stores it and queues a job (202); GET /enrollment-jobs/{id} shows progress and
results; GET /enrollment-jobs lists jobs, most recent first. See docs/central-enrollment-jobs.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

import anyio.to_thread
from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.openapi.spec import OpenAPIFormat, OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import FromPath, QueryParameter
from litestar.types import ControllerRouterHandler

from central import audit
from central.auth.scopes import Principal, Scope, require
from central.enrollment import jobs_repository as repo
from central.enrollment.archive import plan_archive
from central.enrollment.jobs import JobRead, JobSummary
from central.enrollment.jobs_upload import read_archive
from central.enrollment.workers import LEASE_S, JobWorkers, archive_limits
from central.errors import NotFound, Unavailable
from central.runtime import Runtime
from central.schemas import Page, PageLimit
from central.storage import StorageError
from central.storage.keys import job_key
from common.ids import uuid7

log = logging.getLogger("central.enrollment.jobs")


@dataclass
class ArchiveUpload(Operation):
    """The OpenAPI operation of POST /enrollment-jobs: its body is a zip (raw or multipart), which the
    handler reads itself rather than through a declared `data` parameter."""

    def __post_init__(self) -> None:
        binary = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
        multipart = Schema(type=OpenAPIType.OBJECT, properties={"archive": binary}, required=["archive"])
        self.request_body = RequestBody(
            content={
                "application/zip": OpenAPIMediaType(schema=binary),
                "multipart/form-data": OpenAPIMediaType(schema=multipart),
            },
            required=True,
            description="a zip with one folder per person (folder name = external id) holding the photos",
        )


ResultsAfter = Annotated[int, QueryParameter(ge=-1, description="`next_results` of the previous poll")]
ResultsLimit = Annotated[int, QueryParameter(ge=0, le=1000, description="results per poll (0-1000)")]


@post(
    "/enrollment-jobs",
    opt={"scope": Scope.OPERATOR},
    tags=["enrollment"],
    status_code=202,
    request_max_body_size=None,  # read_archive enforces FACEGATE_MAX_ZIP_BYTES while streaming
    operation_class=ArchiveUpload,
)
async def create_job(
    request: Request[Any, Any, Any], principal: NamedDependency[Principal], runtime: NamedDependency[Runtime]
) -> JobRead:
    """Queue a bulk enrollment: a zip with one folder per person (folder name = external id) holding
    that person's photos. Body: the zip with `Content-Type: application/zip`, or multipart/form-data
    with the zip in the file field `archive`. The archive's directory is checked before the job is
    accepted; photos are enrolled in the background. Needs an operator key without site restriction."""
    require(principal, Scope.OPERATOR, None)
    workers = _workers(runtime)
    data = await read_archive(request, runtime.settings.max_zip_bytes)
    plan = await anyio.to_thread.run_sync(plan_archive, data, archive_limits(runtime.settings))
    job_id = UUID(uuid7())
    key = job_key(job_id)
    await anyio.to_thread.run_sync(runtime.store.put, key, data, "application/zip")
    try:
        async with runtime.pool.connection() as conn:
            job = await repo.insert_job(
                conn, job_id, created_by=audit.actor(principal), object_key=key, plan=plan, lease_s=LEASE_S
            )
            details = {"photos": len(plan.photos), "people": len(plan.people), "skipped": len(plan.skipped)}
            await audit.record(
                conn, principal, "enrollment_job.create", "enrollment_job", job_id, details=details
            )
    except BaseException:
        await _forget(runtime, key)
        raise
    await workers.enqueue(job_id)
    log.info("enrollment_job_queued", extra={"job_id": str(job_id), "photos": len(plan.photos)})
    return job


@get("/enrollment-jobs/{job_id:uuid}", opt={"scope": Scope.VIEWER}, tags=["enrollment"])
async def read_job(
    job_id: FromPath[UUID],
    principal: NamedDependency[Principal],
    runtime: NamedDependency[Runtime],
    results_after: ResultsAfter = -1,
    results_limit: ResultsLimit = 100,
) -> JobRead:
    """A job's status, counts, skipped entries and the results after seq `results_after` (at most
    `results_limit`). Poll with `results_after` = the previous `next_results` until it is null."""
    require(principal, Scope.VIEWER, None)
    async with runtime.pool.connection() as conn:
        job = await repo.get_job(conn, job_id, results_after, results_limit)
    if job is None:
        raise NotFound(f"no enrollment job {job_id}", code="job_not_found")
    return job


@get("/enrollment-jobs", opt={"scope": Scope.VIEWER}, tags=["enrollment"])
async def list_jobs(
    principal: NamedDependency[Principal],
    runtime: NamedDependency[Runtime],
    limit: PageLimit = 50,
    cursor: Annotated[str | None, QueryParameter(description="`next` of the previous page")] = None,
) -> Page:
    """Enrollment jobs, most recent first (counts only; read one job for its results)."""
    require(principal, Scope.VIEWER, None)
    async with runtime.pool.connection() as conn:
        jobs, following = await repo.list_jobs(conn, limit, cursor)
    items: list[JobSummary] = jobs
    return Page(items, following)


def _workers(runtime: Runtime) -> JobWorkers:
    if runtime.jobs is None:
        raise Unavailable("the enrollment job workers are not running on this replica; retry later")
    return runtime.jobs


async def _forget(runtime: Runtime, key: str) -> None:
    try:
        await anyio.to_thread.run_sync(runtime.store.delete, key)
    except StorageError as err:
        log.warning("enrollment_job_archive_not_deleted", extra={"key": key, "error": str(err)})


ROUTES: list[ControllerRouterHandler] = [create_job, read_job, list_jobs]
