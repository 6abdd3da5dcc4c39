"""HTTP routes of the retention policies (mounted under /api/v1 by central/app.py)."""

from __future__ import annotations

from litestar import get, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.types import ControllerRouterHandler

from central.principal import Principal, Scope
from central.retention.schemas import DefaultsRead, DefaultsWrite, SitePolicyRead, SitePolicyWrite
from central.retention.service import RetentionService

TAGS = ["retention"]


@get("/retention", opt={"scope": Scope.VIEWER}, tags=TAGS)
async def get_defaults(
    principal: NamedDependency[Principal], retention: NamedDependency[RetentionService]
) -> DefaultsRead:
    """The default policy (every site without its own value) and the audit log's."""
    return await retention.get_defaults(principal)


@put("/retention", opt={"scope": Scope.ADMIN}, tags=TAGS)
async def set_defaults(
    data: JSONBody[DefaultsWrite],
    principal: NamedDependency[Principal],
    retention: NamedDependency[RetentionService],
) -> DefaultsRead:
    """Replace the defaults (unrestricted admin keys)."""
    return await retention.set_defaults(principal, data)


@get("/sites/{site:str}/retention", opt={"scope": Scope.VIEWER}, tags=TAGS)
async def get_site(
    site: FromPath[str], principal: NamedDependency[Principal], retention: NamedDependency[RetentionService]
) -> SitePolicyRead:
    """The policy in force at the site, and which of its values are the site's own."""
    return await retention.get_site(principal, site)


@put("/sites/{site:str}/retention", opt={"scope": Scope.ADMIN}, tags=TAGS)
async def set_site(
    site: FromPath[str],
    data: JSONBody[SitePolicyWrite],
    principal: NamedDependency[Principal],
    retention: NamedDependency[RetentionService],
) -> SitePolicyRead:
    """Replace the site's own values (null: the default)."""
    return await retention.set_site(principal, site, data)


ROUTES: list[ControllerRouterHandler] = [get_defaults, set_defaults, get_site, set_site]
