"""`/api/v1/people`: create, list, read, update and erase people; list their photos and templates, delete
a template. The rules are in central/people/service.py; enrolling photos (`POST /people/{id}/photos`) is
central/enrollment/routes.py.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.types import ControllerRouterHandler

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
from central.people.service import PeopleService
from central.principal import Principal, Scope

TAGS = ["people"]


@post("/people", opt={"scope": Scope.OPERATOR}, tags=TAGS)
async def create(
    data: JSONBody[PersonCreate],
    principal: NamedDependency[Principal],
    people: NamedDependency[PeopleService],
) -> PersonRead:
    """Create a person (201); 409 `duplicate_external_id` when the external id is taken."""
    return await people.create(principal, data)


@get("/people", opt={"scope": Scope.VIEWER}, tags=TAGS)
async def index(
    principal: NamedDependency[Principal],
    people: NamedDependency[PeopleService],
    limit: Annotated[int, QueryParameter(ge=1, le=500, description="people per page (1-500)")] = 50,
    cursor: Annotated[str | None, QueryParameter(description="`next` of the previous page")] = None,
) -> PersonPage:
    """People in creation order, a page at a time; erased people are left out (and, for a site-restricted
    key, those in no gallery of its sites)."""
    return await people.list_people(principal, limit, cursor)


@get("/people/{person_id:uuid}", opt={"scope": Scope.VIEWER}, tags=TAGS)
async def show(
    person_id: FromPath[UUID], principal: NamedDependency[Principal], people: NamedDependency[PeopleService]
) -> PersonRead:
    """The person (to a site-restricted key: only one in a gallery of its sites)."""
    return await people.get(person_id, principal)


@patch("/people/{person_id:uuid}", opt={"scope": Scope.OPERATOR}, tags=TAGS)
async def update(
    person_id: FromPath[UUID],
    data: JSONBody[PersonUpdate],
    principal: NamedDependency[Principal],
    people: NamedDependency[PeopleService],
) -> PersonRead:
    """Change the fields present in the body."""
    return await people.update(principal, person_id, data)


@delete("/people/{person_id:uuid}", opt={"scope": Scope.ADMIN}, tags=TAGS, status_code=200)
async def erase(
    person_id: FromPath[UUID], principal: NamedDependency[Principal], people: NamedDependency[PeopleService]
) -> EraseReport:
    """Erase the person: templates, photos, crops, affected snapshots and personal fields (see docs)."""
    return await people.erase(principal, person_id)


@get("/people/{person_id:uuid}/photos", opt={"scope": Scope.VIEWER}, tags=TAGS)
async def photos(
    person_id: FromPath[UUID], principal: NamedDependency[Principal], people: NamedDependency[PeopleService]
) -> list[PhotoRead]:
    """The person's stored (accepted) photos, each with a short-lived download URL."""
    return await people.photos(person_id, principal)


@get("/people/{person_id:uuid}/templates", opt={"scope": Scope.VIEWER}, tags=TAGS)
async def templates(
    person_id: FromPath[UUID], principal: NamedDependency[Principal], people: NamedDependency[PeopleService]
) -> list[TemplateRead]:
    """The person's templates (never the embeddings)."""
    return await people.templates(person_id, principal)


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
    people: NamedDependency[PeopleService],
) -> TemplateDeleted:
    """Delete a template (and its photo when no other template came from it); galleries get a change."""
    return await people.delete_template(principal, person_id, template_id)


ROUTES: list[ControllerRouterHandler] = [
    create,
    index,
    show,
    update,
    erase,
    photos,
    templates,
    remove_template,
]
