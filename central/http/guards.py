"""The guard on every `/api/v1` route: authenticate, rate limit, check the route's minimum scope.

Each handler declares `opt={"scope": Scope.X}`: viewer, operator or admin for API keys, or EDGE for
the endpoints edges call (an edge credential reaches only those; admin keys may call them too, for
debugging, and so may keys of scope X and above where the route also declares `"key_scope": Scope.X`).
Site checks need the row being touched, so services do them with `require` / `require_edge`. The
principal is then available to handlers as the `principal` dependency. Authentication and rate limiting
are the auth service's `admit`, which the lifespan put in `app.state.auth` (central/lifespan.py).
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from central.auth.service import AuthService
from central.errors import Forbidden
from central.principal import Principal, Scope, require_scope

SCOPE_OPT = "scope"
SITE_PARAM = "site"
"""A path parameter of this name is checked against the principal's sites by the guard itself."""
KEY_SCOPE_OPT = "key_scope"
"""On an EDGE route, `opt={"key_scope": Scope.X}` also lets API keys of scope X and above in."""


async def authenticated(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    needed = handler.opt.get(SCOPE_OPT)
    if not isinstance(needed, Scope):
        raise RuntimeError(f"route {handler} declares no opt={{'scope': Scope.X}}")  # a bug, not input
    auth: AuthService = connection.app.state.auth
    client = connection.client.host if connection.client else None
    principal = await auth.admit(connection.headers.get("authorization"), client)  # 401 or 429, counted
    if handler.opt.get("any_principal"):
        pass  # e.g. POST /auth/token: every valid credential may use it
    elif needed is Scope.EDGE:
        check_edge_route(principal, handler.opt.get(KEY_SCOPE_OPT))
    else:
        require_scope(principal, needed)
    site = connection.path_params.get(SITE_PARAM)
    if isinstance(site, str) and not principal.allows_site(site):
        # Routes under /sites/{site}/...: refused before the body is read, whatever the body holds.
        raise Forbidden("site_not_allowed", f"{principal.kind} {principal.id} may not act on site {site!r}")
    connection.state.principal = principal


def check_edge_route(principal: Principal, key_scope: object) -> None:
    """Edges pass; API keys need admin, or `key_scope` where the route declares one."""
    if principal.kind != "key":
        return
    if isinstance(key_scope, Scope):
        require_scope(principal, key_scope)
    elif principal.scope is not Scope.ADMIN:
        raise Forbidden("edge_endpoint", "this endpoint is for edges (and admin keys)")


def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):
        raise RuntimeError("the `principal` dependency is only available behind the authenticated guard")
    return principal
