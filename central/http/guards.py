"""The guard on every `/api/v1` route: authenticate, rate limit, check the route's minimum scope.

Each handler declares `opt={"scope": Scope.X}`: viewer, operator or admin for API keys, or EDGE for
the endpoints edges call (an edge credential reaches only those; admin keys may call them too, for
debugging, and so may keys of scope X and above where the route also declares `"key_scope": Scope.X`).
Site checks need the row being touched, so handlers do them with `require` / `require_edge`. The
principal is then available to handlers as the `principal` dependency.
"""

from __future__ import annotations

import time
from typing import Any

import anyio.to_thread
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from central.auth.errors import AuthError, Forbidden
from central.auth.scopes import Principal, Scope, require_scope
from central.errors import TooManyRequests
from central.runtime import Runtime

SCOPE_OPT = "scope"
SITE_PARAM = "site"
"""A path parameter of this name is checked against the principal's sites by the guard itself."""
KEY_SCOPE_OPT = "key_scope"
"""On an EDGE route, `opt={"key_scope": Scope.X}` also lets API keys of scope X and above in."""


async def authenticated(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    runtime: Runtime = connection.app.state.runtime
    needed = handler.opt.get(SCOPE_OPT)
    if not isinstance(needed, Scope):
        raise RuntimeError(f"route {handler} declares no opt={{'scope': Scope.X}}")  # a bug, not input
    try:
        principal = await runtime.authenticator.authenticate(connection.headers.get("authorization"))
    except AuthError as err:
        runtime.metrics.auth_failures.labels(err.reason).inc()
        raise
    decision = await anyio.to_thread.run_sync(runtime.limiter.hit, rate_key(principal), time.time())
    if not decision.allowed:
        runtime.metrics.rate_limited.inc()
        raise TooManyRequests(
            f"rate limit of {runtime.settings.rate_limit_per_s:g} requests/s "
            f"(burst {runtime.settings.rate_limit_burst}) exceeded for this key; retry later",
            decision.retry_after_s,
        )
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


def rate_key(principal: Principal) -> str:
    if principal.kind == "edge":
        return f"edge:{principal.sites[0]}/{principal.id}"
    return f"key:{principal.id}"


def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):
        raise RuntimeError("the `principal` dependency is only available behind the authenticated guard")
    return principal
