"""`/api/v1/people`: create, list, read, update and erase people; enroll photos; list and delete templates.

Scopes: viewers read; operators create, update, enroll photos and delete templates; admins erase.
People are not bound to a site: every read is open to site-restricted keys, every write needs a
key without a site restriction (`require(principal, scope, None)`).
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Request, delete, get, patch, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, MultipartBody, QueryParameter
from litestar.types import ControllerRouterHandler

from central import audit
from central.auth.scopes import Principal, Scope, require
from central.enrollment.service import PhotoResult, enroll_photo
from central.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from central.people import photos as person_photos
from central.people.erase import delete_template, erase_person
from central.people.repository import create_person, get_person, list_people, update_person
from central.people.schemas import (
    EraseReport,
    PersonCreate,
    PersonPage,
    PersonRead,
    PersonUpdate,
    PhotoRead,
    TemplateDeleted,
    TemplateRead,
)
from central.runtime import Runtime

TAGS = ["people"]


@post("/people", opt={"scope": Scope.OPERATOR}, tags=TAGS)
async def create(
    data: JSONBody[PersonCreate], principal: NamedDependency[Principal], runtime: NamedDependency[Runtime]
) -> PersonRead:
    """Create a person (201); 409 `duplicate_external_id` when the external id is taken."""
    require(principal, Scope.OPERATOR, None)
    async with runtime.pool.connection() as conn:
        person_id, versions = await create_person(conn, data)
        await audit.record(
            conn, principal, "person.create", "person", person_id, details={"gallery_versions": versions}
        )
        return await get_person(conn, person_id)


@get("/people", opt={"scope": Scope.VIEWER}, tags=TAGS)
async def index(
    runtime: NamedDependency[Runtime],
    limit: Annotated[int, QueryParameter(ge=1, le=500, description="people per page (1-500)")] = 50,
    cursor: Annotated[str | None, QueryParameter(description="`next` of the previous page")] = None,
) -> PersonPage:
    """People in creation order, a page at a time; erased people are left out."""
    async with runtime.pool.connection() as conn:
        items, following = await list_people(conn, limit, cursor)
    return PersonPage(items, following)


@get("/people/{person_id:uuid}", opt={"scope": Scope.VIEWER}, tags=TAGS)
async def show(person_id: FromPath[UUID], runtime: NamedDependency[Runtime]) -> PersonRead:
    async with runtime.pool.connection() as conn:
        return await get_person(conn, person_id)


@patch("/people/{person_id:uuid}", opt={"scope": Scope.OPERATOR}, tags=TAGS)
async def update(
    person_id: FromPath[UUID],
    data: JSONBody[PersonUpdate],
    principal: NamedDependency[Principal],
    runtime: NamedDependency[Runtime],
) -> PersonRead:
    """Change the fields present in the body."""
    require(principal, Scope.OPERATOR, None)
    async with runtime.pool.connection() as conn:
        changed = await update_person(conn, person_id, data)
        if changed:
            await audit.record(
                conn, principal, "person.update", "person", person_id, details={"fields": changed}
            )
        return await get_person(conn, person_id)


@delete("/people/{person_id:uuid}", opt={"scope": Scope.ADMIN}, tags=TAGS, status_code=200)
async def erase(
    person_id: FromPath[UUID], principal: NamedDependency[Principal], runtime: NamedDependency[Runtime]
) -> EraseReport:
    """Erase the person: templates, photos, crops, affected snapshots and personal fields (see docs)."""
    require(principal, Scope.ADMIN, None)
    return await erase_person(runtime, principal, person_id)


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
    tags=TAGS,
    status_code=200,
    before_request=require_multipart,
)
async def add_photos(
    person_id: FromPath[UUID],
    data: MultipartBody[dict[str, Any]],
    principal: NamedDependency[Principal],
    runtime: NamedDependency[Runtime],
) -> list[PhotoResult]:
    """Enroll one or more photos (file parts under any field name, e.g. `photos`): one result each."""
    require(principal, Scope.OPERATOR, None)
    files = upload_files(data, runtime.settings.max_photos_per_request)
    async with runtime.pool.connection() as conn:
        await get_person(conn, person_id)
    results = []
    for upload in files:
        content = await read_limited(upload, runtime.settings.max_photo_bytes)
        results.append(await enroll_photo(runtime, principal, person_id, upload.filename or "", content))
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


@get("/people/{person_id:uuid}/photos", opt={"scope": Scope.VIEWER}, tags=TAGS)
async def photos(person_id: FromPath[UUID], runtime: NamedDependency[Runtime]) -> list[PhotoRead]:
    """The person's stored (accepted) photos, each with a short-lived download URL."""
    return await person_photos.list_photos(runtime, person_id)


@get("/people/{person_id:uuid}/templates", opt={"scope": Scope.VIEWER}, tags=TAGS)
async def templates(person_id: FromPath[UUID], runtime: NamedDependency[Runtime]) -> list[TemplateRead]:
    """The person's templates (never the embeddings)."""
    return await person_photos.list_templates(runtime, person_id)


@delete(
    "/people/{person_id:uuid}/templates/{template_id:uuid}",
    opt={"scope": Scope.OPERATOR},
    tags=TAGS,
    status_code=200,
)
async def remove_template(
    person_id: FromPath[UUID],
    template_id: FromPath[UUID],
    principal: NamedDependency[Principal],
    runtime: NamedDependency[Runtime],
) -> TemplateDeleted:
    """Delete a template (and its photo when no other template came from it); galleries get a change."""
    require(principal, Scope.OPERATOR, None)
    return await delete_template(runtime, principal, person_id, template_id)


ROUTES: list[ControllerRouterHandler] = [
    create,
    index,
    show,
    update,
    erase,
    add_photos,
    photos,
    templates,
    remove_template,
]
