"""The operator loop's pages (docs/operator-loop.md): an event's corrections ("not P", "this is P", "a new
person"), the unknown-face clusters (enroll one as a person, merge one into a person) and search by
photo. People are named by their external id in the forms; the services check roles and sites."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Request, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.params import FromPath, Parameter
from litestar.response import Redirect, Template

from central.clusters.schemas import ClusterEnroll, ClusterMerge
from central.clusters.service import ClusterService
from central.console.rendering import page, principal_of, see_other
from central.corrections.schemas import CorrectionCreate, NewPerson
from central.corrections.service import CorrectionService
from central.enrollment.routes import read_limited
from central.errors import InvalidInput
from central.people.service import PeopleService
from central.search.service import SearchService

PHOTOS = 3


def _text(form: Any, name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def _galleries(form: Any) -> list[str]:
    return [g.strip() for g in _text(form, "galleries").split(",") if g.strip()]


def _count(form: Any, name: str, default: int) -> int:
    raw = _text(form, name)
    if not raw:
        return default
    if not raw.isdigit() or int(raw) > 10:
        raise InvalidInput(f"{name}: a number of photos from 0 to 10")
    return int(raw)


@post("/events/{event_id:uuid}/corrections")
async def correct_event(
    request: Request[Any, Any, Any],
    event_id: FromPath[UUID],
    corrections: NamedDependency[CorrectionService],
    people: NamedDependency[PeopleService],
) -> Redirect:
    """One of the event page's three forms: not_person, is_person, new_person."""
    principal = principal_of(request)
    form = await request.form()
    action = _text(form, "action")
    who = _text(form, "person")
    person_id = (await people.find(who, principal)).id if who else None
    new = None
    if action == "new_person":
        new = NewPerson(_text(form, "external_id"), _text(form, "display_name"), _galleries(form))
    if action not in {"not_person", "is_person", "new_person"}:
        raise InvalidInput("choose what the event shows: not this person, this person, or a new person")
    data = CorrectionCreate(
        action=action,  # type: ignore[arg-type]
        person_id=person_id,
        new_person=new,
        add_template=form.get("add_template") == "on",
        note=_text(form, "note")[:500],
    )
    correction = await corrections.correct(principal, event_id, data)
    return see_other(f"/console/events/{event_id}?corrected={correction.id}")


@get("/clusters")
async def clusters_page(
    request: Request[Any, Any, Any],
    clusters: NamedDependency[ClusterService],
    site: Annotated[str | None, Parameter(max_length=64)] = None,
    before: Annotated[int | None, Parameter(ge=1)] = None,
) -> Template:
    """Open clusters of unknown faces, newest first."""
    listing = await clusters.list_clusters(principal_of(request), "open", site or None, before, 50)
    return page(request, "clusters", clusters=listing.items, next=listing.next, site=site or "")


@get("/clusters/{cluster_id:int}")
async def cluster_page(
    request: Request[Any, Any, Any], cluster_id: FromPath[int], clusters: NamedDependency[ClusterService]
) -> Template:
    return page(request, "cluster", cluster=await clusters.get(principal_of(request), cluster_id))


@post("/clusters/{cluster_id:int}/enroll")
async def enroll_cluster(
    request: Request[Any, Any, Any], cluster_id: FromPath[int], clusters: NamedDependency[ClusterService]
) -> Redirect:
    form = await request.form()
    data = ClusterEnroll(
        external_id=_text(form, "external_id"),
        display_name=_text(form, "display_name"),
        galleries=_galleries(form),
        photos=_count(form, "photos", PHOTOS),
    )
    outcome = await clusters.enroll(principal_of(request), cluster_id, data)
    return see_other(f"/console/people/{outcome.person_id}")


@post("/clusters/{cluster_id:int}/merge")
async def merge_cluster(
    request: Request[Any, Any, Any],
    cluster_id: FromPath[int],
    clusters: NamedDependency[ClusterService],
    people: NamedDependency[PeopleService],
) -> Redirect:
    principal = principal_of(request)
    form = await request.form()
    person = await people.find(_text(form, "person"), principal)
    outcome = await clusters.merge(
        principal, cluster_id, ClusterMerge(person_id=person.id, photos=_count(form, "photos", 0))
    )
    return see_other(f"/console/people/{outcome.person_id}")


@get("/search")
async def search_page(request: Request[Any, Any, Any]) -> Template:
    return page(request, "search", result=None, site="")


@post("/search")
async def search_photo(request: Request[Any, Any, Any], search: NamedDependency[SearchService]) -> Template:
    """The picked photo's face against the people and the events (audited)."""
    principal = principal_of(request)
    form = await request.form()
    site = _text(form, "site") or None
    search.require_searcher(principal, site)
    upload = form.get("photo")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise InvalidInput("choose a photo showing one face", code="no_photos")
    photo = await read_limited(upload, search.enrollment.settings.max_photo_bytes)
    result = await search.search(principal, photo, site=site, people=5, events=50, threshold=None)
    return page(request, "search", result=result, site=site or "")


ROUTES = [correct_event, clusters_page, cluster_page, enroll_cluster, merge_cluster, search_page]
UPLOAD_ROUTES = [search_photo]
