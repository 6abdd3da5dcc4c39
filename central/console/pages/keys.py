"""API keys and the audit log (admins): create (the key shown once), revoke (its console sessions end),
scopes and sites; the audit log filtered by actor and action."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, Parameter
from litestar.response import Redirect, Template

from central.auth.schemas import KeyCreate
from central.auth.service import AuthService
from central.console.rendering import page, principal_of, see_other
from central.errors import InvalidInput

AUDIT_PAGE = 100


@get("/keys")
async def keys_page(request: Request[Any, Any, Any], auth: NamedDependency[AuthService]) -> Template:
    return page(request, "keys", keys=await auth.keys(principal_of(request)), created=None)


@post("/keys")
async def create_key(request: Request[Any, Any, Any], auth: NamedDependency[AuthService]) -> Template:
    form = await request.form()
    sites = [s.strip() for s in str(form.get("sites", "")).split(",") if s.strip()]
    fields = {"name": str(form.get("name", "")).strip(), "scope": str(form.get("scope", "")), "sites": sites}
    try:
        data = msgspec.convert(fields, KeyCreate)
    except msgspec.ValidationError as err:
        raise InvalidInput(f"the key: {err}") from err
    principal = principal_of(request)
    created = await auth.create_key(principal, data)
    return page(request, "keys", keys=await auth.keys(principal), created=created)


@post("/keys/{prefix:str}/revoke")
async def revoke_key(
    request: Request[Any, Any, Any], prefix: FromPath[str], auth: NamedDependency[AuthService]
) -> Redirect:
    await auth.revoke(principal_of(request), prefix)
    return see_other("/console/keys")


@get("/audit")
async def audit_page(
    request: Request[Any, Any, Any],
    auth: NamedDependency[AuthService],
    actor: Annotated[str | None, Parameter(max_length=200)] = None,
    action: Annotated[str | None, Parameter(max_length=100)] = None,
    before: Annotated[int | None, Parameter(ge=1)] = None,
) -> Template:
    rows = await auth.audit_log(
        principal_of(request), actor=actor or None, action=action or None, before=before, limit=AUDIT_PAGE
    )
    older = rows[-1][0] if len(rows) == AUDIT_PAGE else None
    return page(request, "audit", rows=rows, actor=actor or "", action=action or "", older=older)


ROUTES = [keys_page, create_key, revoke_key, audit_page]
