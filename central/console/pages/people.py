"""People: search and pages, a person's page (photos, templates, galleries, last seen per site, events),
enrollment by dropped or picked photos (each photo's outcome shown on it), bulk enrollment by zip with
a progress bar, and erase confirmed by typing the person's name."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Request, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.params import FromPath, Parameter
from litestar.response import Redirect, Template

from central.console.pages.events import with_names
from central.console.rendering import page, principal_of, see_other
from central.enrollment.routes import read_limited
from central.enrollment.service import EnrollmentService
from central.errors import InvalidInput, PayloadTooLarge
from central.events.service import EventService
from central.galleries.service import GalleryService
from central.people.schemas import PersonCreate
from central.people.service import PeopleService

PAGE_SIZE = 50
PERSON_EVENTS = 20


async def _files(request: Request[Any, Any, Any], limit: int) -> list[UploadFile]:
    form = await request.form()
    files = [value for _, value in form.multi_items() if isinstance(value, UploadFile) and value.filename]
    if not files:
        raise InvalidInput("choose or drop at least one photo", code="no_photos")
    if len(files) > limit:
        raise PayloadTooLarge(f"{len(files)} photos at once; drop at most {limit}", code="too_many_photos")
    return files


@get("/people")
async def people_page(
    request: Request[Any, Any, Any],
    people: NamedDependency[PeopleService],
    galleries: NamedDependency[GalleryService],
    q: Annotated[str | None, Parameter(max_length=200)] = None,
    cursor: Annotated[str | None, Parameter(max_length=500)] = None,
) -> Template:
    listing = await people.list_people(principal_of(request), PAGE_SIZE, cursor or None, q or None)
    choices = (await galleries.list_galleries(principal_of(request), "", 500, None)).items
    return page(request, "people", people=listing.items, q=q or "", next=listing.next, galleries=choices)


@post("/people")
async def create_person(request: Request[Any, Any, Any], people: NamedDependency[PeopleService]) -> Redirect:
    """Add a person (to the galleries ticked), then show their page to enroll photos."""
    form = await request.form()
    fields = {
        "external_id": form.get("external_id", ""),
        "display_name": form.get("display_name", ""),
        "galleries": [g for g in form.getall("galleries", []) if isinstance(g, str)],
    }
    try:
        data = msgspec.convert(fields, PersonCreate)
    except msgspec.ValidationError as err:
        raise InvalidInput(f"the person's fields: {err}") from err
    person = await people.create(principal_of(request), data)
    return see_other(f"/console/people/{person.id}")


@get("/people/{person_id:uuid}")
async def person_page(
    request: Request[Any, Any, Any],
    person_id: FromPath[UUID],
    people: NamedDependency[PeopleService],
    events: NamedDependency[EventService],
) -> Template:
    principal = principal_of(request)
    person = await people.get(person_id, principal)
    listing = await events.list_events(
        principal, site=None, edge=None, camera=None, person_id=person_id, unknown=None,
        since=None, until=None, limit=PERSON_EVENTS, cursor=None,
    )  # fmt: skip
    return page(
        request,
        "person",
        person=person,
        photos=await people.photos(person_id, principal),
        templates=await people.templates(person_id, principal),
        last_seen=await events.last_seen_per_site(principal, person_id),
        rows=await with_names(people, listing.items),
        more_events=listing.next is not None,
    )


@post("/people/{person_id:uuid}/photos")
async def enroll_photos(
    request: Request[Any, Any, Any], person_id: FromPath[UUID], enrollment: NamedDependency[EnrollmentService]
) -> Template:
    """Enroll the dropped or picked photos; answers the outcome of each (an htmx fragment)."""
    principal = principal_of(request)
    enrollment.require_writer(principal)
    files = await _files(request, enrollment.settings.max_photos_per_request)
    await enrollment.require_person(person_id)
    results = []
    for upload in files:
        content = await read_limited(upload, enrollment.settings.max_photo_bytes)
        results.append(await enrollment.enroll_photo(principal, person_id, upload.filename or "", content))
    return page(request, "enroll_results", results=results, person_id=person_id)


@post("/people/{person_id:uuid}/erase")
async def erase_person(
    request: Request[Any, Any, Any], person_id: FromPath[UUID], people: NamedDependency[PeopleService]
) -> Template:
    """Erase the person when the typed confirmation is their name (or external id when they have none)."""
    person = await people.get(person_id, principal_of(request))
    expected = person.display_name or person.external_id or ""
    typed = (await request.form()).get("confirm", "")
    if not isinstance(typed, str) or typed.strip() != expected:
        raise InvalidInput(f"type the person's name exactly ({len(expected)} characters) to erase them")
    report = await people.erase(principal_of(request), person_id)
    return page(request, "erased", name=expected, report=report)


@get("/jobs")
async def jobs_page(
    request: Request[Any, Any, Any],
    enrollment: NamedDependency[EnrollmentService],
    cursor: Annotated[str | None, Parameter(max_length=500)] = None,
) -> Template:
    listing = await enrollment.list_jobs(principal_of(request), PAGE_SIZE, cursor or None)
    return page(request, "jobs", jobs=listing.items, next=listing.next)


@post("/jobs")
async def create_job(
    request: Request[Any, Any, Any], enrollment: NamedDependency[EnrollmentService]
) -> Redirect:
    """Queue a bulk enrollment job from an uploaded zip; shows its progress page."""
    principal = principal_of(request)
    enrollment.require_writer(principal)
    files = await _files(request, 1)
    data = await files[0].read(enrollment.settings.max_zip_bytes + 1)
    if len(data) > enrollment.settings.max_zip_bytes:
        raise PayloadTooLarge("the zip is over FACEGATE_MAX_ZIP_BYTES; split it", code="zip_too_large")
    job = await enrollment.create_job(principal, data)
    return see_other(f"/console/jobs/{job.id}")


@get("/jobs/{job_id:uuid}")
async def job_page(
    request: Request[Any, Any, Any], job_id: FromPath[UUID], enrollment: NamedDependency[EnrollmentService]
) -> Template:
    job = await enrollment.read_job(principal_of(request), job_id, 0, 500)
    return page(request, "job", job=job)


@get("/jobs/{job_id:uuid}/progress")
async def job_progress(
    request: Request[Any, Any, Any], job_id: FromPath[UUID], enrollment: NamedDependency[EnrollmentService]
) -> Template:
    job = await enrollment.read_job(principal_of(request), job_id, 0, 500)
    return page(request, "job_progress", job=job)


ROUTES = [people_page, create_person, person_page, erase_person, jobs_page, job_page, job_progress]
UPLOAD_ROUTES = [enroll_photos]
ZIP_ROUTES = [create_job]
