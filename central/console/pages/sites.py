"""Sites and edges (admins change them): create a site, register an edge (its credentials shown once,
with a copy button and a ready device-file snippet), rotate its credentials, decommission it."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template

from central.console.rendering import page, principal_of, see_other
from central.errors import InvalidInput
from central.fleet.schemas import EdgeCreate, EdgeCredentials, EdgeRead, SiteCreate
from central.fleet.service import FleetService

MAX_EDGES = 500
_T = TypeVar("_T")


async def _fields(request: Request[Any, Any, Any], names: tuple[str, ...]) -> dict[str, str]:
    form = await request.form()
    return {name: str(form.get(name, "")).strip() for name in names}


def _convert(fields: dict[str, str], kind: type[_T], what: str) -> _T:
    try:
        return msgspec.convert(fields, kind)
    except msgspec.ValidationError as err:
        raise InvalidInput(f"{what}: {err}") from err


@get("/sites")
async def sites_page(request: Request[Any, Any, Any], fleet: NamedDependency[FleetService]) -> Template:
    principal = principal_of(request)
    sites = await fleet.list_sites(principal)
    edges = (await fleet.list_edges(principal, None, None, MAX_EDGES, None)).items
    return page(request, "sites", sites=sites, edges=edges)


@post("/sites")
async def create_site(request: Request[Any, Any, Any], fleet: NamedDependency[FleetService]) -> Redirect:
    data = _convert(await _fields(request, ("id", "name")), SiteCreate, "the site")
    await fleet.create_site(principal_of(request), data)
    return see_other("/console/sites")


def _shown_once(request: Request[Any, Any, Any], edge: EdgeRead, credentials: EdgeCredentials) -> Template:
    central = f"{request.url.scheme}://{request.headers.get('x-forwarded-host') or request.url.netloc}"
    return page(request, "credentials", edge=edge, credentials=credentials, central_url=central)


@post("/sites/{site:str}/edges")
async def register_edge(
    request: Request[Any, Any, Any], site: FromPath[str], fleet: NamedDependency[FleetService]
) -> Template:
    data = _convert(await _fields(request, ("id", "name")), EdgeCreate, "the edge")
    registered = await fleet.register_edge(principal_of(request), site, data)
    return _shown_once(request, registered.edge, registered.credentials)


@post("/sites/{site:str}/edges/{edge:str}/rotate")
async def rotate(
    request: Request[Any, Any, Any],
    site: FromPath[str],
    edge: FromPath[str],
    fleet: NamedDependency[FleetService],
) -> Template:
    principal = principal_of(request)
    credentials = await fleet.rotate_credentials(principal, site, edge)
    return _shown_once(request, await fleet.get_edge(principal, site, edge), credentials)


@post("/sites/{site:str}/edges/{edge:str}/decommission")
async def decommission(
    request: Request[Any, Any, Any],
    site: FromPath[str],
    edge: FromPath[str],
    fleet: NamedDependency[FleetService],
) -> Redirect:
    await fleet.delete_edge(principal_of(request), site, edge)
    return see_other("/console/sites")


ROUTES = [sites_page, create_site, register_edge, rotate, decommission]
