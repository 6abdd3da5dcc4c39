"""HTTP routes of this package (mounted under /api/v1 by central/app.py): photos for one person, and bulk
enrollment jobs.

POST /people/{id}/photos enrols one or more photos (multipart, one file part each), one result each.
POST /enrollment-jobs takes a zip (raw `application/zip` body, or multipart file field `archive`),
checks its directory, stores it and queues a job (202); GET /enrollment-jobs/{id} shows progress and
results; GET /enrollment-jobs lists jobs, most recent first. See docs/central-enrollment-jobs.md.
The rules are in central/enrollment/service.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from litestar import Request, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.openapi.spec import OpenAPIFormat, OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import FromPath, MultipartBody, QueryParameter
from litestar.types import ControllerRouterHandler

from central.enrollment.jobs_upload import read_archive
from central.enrollment.schemas import JobRead, PhotoResult
from central.enrollment.service import EnrollmentService
from central.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from central.principal import Principal, Scope
from central.schemas import Page, PageLimit


async def require_multipart(request: Request[Any, Any, Any]) -> None:
    """415 before the body is parsed unless it is multipart/form-data."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "multipart/form-data":
        raise UnsupportedMediaType(
            f"send the photos as multipart/form-data (one file part per photo), not {media_type or 'no type'}"
        )


@post(
    "/people/{person_id:uuid}/photos",
    opt={"scope": Scope.OPERATOR},
    tags=["people"],
    status_code=200,
    before_request=require_multipart,
)
async def add_photos(
    person_id: FromPath[UUID],
    data: MultipartBody[dict[str, Any]],
    principal: NamedDependency[Principal],
    enrollment: NamedDependency[EnrollmentService],
) -> list[PhotoResult]:
    """Enroll one or more photos (file parts under any field name, e.g. `photos`): one result each."""
    enrollment.require_writer(principal)
    files = upload_files(data, enrollment.settings.max_photos_per_request)
    await enrollment.require_person(person_id)
    results = []
    for upload in files:
        content = await read_limited(upload, enrollment.settings.max_photo_bytes)
        results.append(await enrollment.enroll_photo(principal, person_id, upload.filename or "", content))
    return results


def upload_files(form: dict[str, Any], limit: int) -> list[UploadFile]:
    files: list[UploadFile] = []
    for name, value in form.items():
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, UploadFile):
                raise InvalidInput(f"form field {name!r} is not a file; send each photo as a file part")
            files.append(item)
    if not files:
        raise InvalidInput("no photo in the request; send one file part per photo", code="no_photos")
    if len(files) > limit:
        raise PayloadTooLarge(
            f"{len(files)} photos in one request; send at most {limit} (FACEGATE_MAX_PHOTOS_PER_REQUEST) "
            "or use a bulk enrollment job",
            code="too_many_photos",
        )
    return files


async def read_limited(upload: UploadFile, limit: int) -> bytes:
    content = await upload.read(limit + 1)
    if len(content) > limit:
        raise PayloadTooLarge(
            f"photo {upload.filename!r} is over {limit} bytes (FACEGATE_MAX_PHOTO_BYTES); "
            "resize it and retry",
            code="photo_too_large",
        )
    return content


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


ResultsAfter = Annotated[
    int, QueryParameter(ge=-1, le=2**31, description="`next_results` of the previous poll")
]
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
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    enrollment: NamedDependency[EnrollmentService],
) -> JobRead:
    """Queue a bulk enrollment: a zip with one folder per person (folder name = external id) holding
    that person's photos. Body: the zip with `Content-Type: application/zip`, or multipart/form-data
    with the zip in the file field `archive`. The archive's directory is checked before the job is
    accepted; photos are enrolled in the background. Needs an operator key without site restriction."""
    enrollment.require_writer(principal)
    data = await read_archive(request, enrollment.settings.max_zip_bytes)
    return await enrollment.create_job(principal, data)


@get("/enrollment-jobs/{job_id:uuid}", opt={"scope": Scope.VIEWER}, tags=["enrollment"])
async def read_job(
    job_id: FromPath[UUID],
    principal: NamedDependency[Principal],
    enrollment: NamedDependency[EnrollmentService],
    results_after: ResultsAfter = -1,
    results_limit: ResultsLimit = 100,
) -> JobRead:
    """A job's status, counts, skipped entries and the results after seq `results_after` (at most
    `results_limit`). Poll with `results_after` = the previous `next_results` until it is null."""
    return await enrollment.read_job(principal, job_id, results_after, results_limit)


@get("/enrollment-jobs", opt={"scope": Scope.VIEWER}, tags=["enrollment"])
async def list_jobs(
    principal: NamedDependency[Principal],
    enrollment: NamedDependency[EnrollmentService],
    limit: PageLimit = 50,
    cursor: Annotated[str | None, QueryParameter(description="`next` of the previous page")] = None,
) -> Page:
    """Enrollment jobs, most recent first (counts only; read one job for its results)."""
    return await enrollment.list_jobs(principal, limit, cursor)


ROUTES: list[ControllerRouterHandler] = [create_job, read_job, list_jobs]
PHOTO_ROUTES: list[ControllerRouterHandler] = [add_photos]
"""Mounted by central/app.py under a router with the photo upload's body limit (`upload_body_bytes`)."""
