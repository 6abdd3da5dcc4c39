"""The console's router: the session guard (cookie, Origin, CSRF), its error pages, its headers.

Every page but sign-in runs behind `signed_in`: no session sends the browser to the sign-in page
(htmx requests get an `HX-Redirect`); every change (POST) must come from this origin and carry the
session's CSRF token, as the `X-CSRF-Token` header (htmx adds it) or the `csrf` form field. Domain
errors become an HTML page with the same status and message the API would give.
"""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Request, Response, Router
from litestar.connection import ASGIConnection
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import MediaType, ScopeType
from litestar.exceptions import HTTPException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.response import Redirect
from litestar.static_files import create_static_files_router
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from central.auth.errors import AuthError
from central.console.live import console_live
from central.console.pages import events, fleet, galleries, keys, loop, notify, people, signin, sites
from central.console.security import COOKIE, CSRF_FIELD, CSRF_HEADER, origin_allowed
from central.console.service import ConsoleService
from central.console.templating import STATIC
from central.errors import ApiError, Forbidden
from central.http.errors import EXCEPTION_HANDLERS
from central.storage import StorageError
from common.errors import FacegateError

PREFIX = "/console"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class NotSignedIn(Exception):  # noqa: N818 - an outcome: the browser goes to the sign-in page
    pass


async def signed_in(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """The console's guard: a live session, and for changes this origin and the CSRF token."""
    console: ConsoleService = connection.app.state.console
    session = await console.session(connection.cookies.get(COOKIE))
    if session is None:
        raise NotSignedIn
    connection.state.console_session = session
    if not isinstance(connection, Request) or connection.method in SAFE_METHODS:
        return
    if not origin_allowed(connection):
        raise Forbidden("bad_origin", "this change did not come from a console page; reload the page")
    sent: object = connection.headers.get(CSRF_HEADER)
    if sent is None:
        sent = (await connection.form()).get(CSRF_FIELD)
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
        raise Forbidden("csrf_refused", "the form's CSRF token is missing or stale; reload the page")


def _to_signin(request: Request[Any, Any, Any], _: Exception) -> Response[Any]:
    if request.headers.get("hx-request"):
        return Response("", status_code=401, headers={"HX-Redirect": f"{PREFIX}/signin"})
    return Redirect(f"{PREFIX}/signin", status_code=303)


def _error_page(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    status, code = 500, "internal_error"
    message = "central could not answer; see its log"
    if isinstance(exc, ApiError):
        status, code, message = exc.status_code, exc.code, str(exc)
    elif isinstance(exc, Forbidden):
        status, code, message = 403, exc.reason, str(exc)
    elif isinstance(exc, AuthError):
        status, code, message = 401, exc.reason, str(exc)
    elif isinstance(exc, StorageError):
        status, code, message = 503, "storage_unavailable", "object storage is unavailable; try again"
    elif isinstance(exc, HTTPException):
        status, code, message = exc.status_code, "bad_request", str(exc.detail)
    elif isinstance(exc, FacegateError):
        status, code, message = 422, "invalid_input", str(exc).splitlines()[0]
    env = request.app.template_engine
    assert env is not None
    html = env.get_template("error.html.j2").render(status=status, code=code, message=message)
    return Response(html, status_code=status, media_type=MediaType.HTML)


class ConsoleHeaders:
    """ASGI middleware: the console's CSP and browser hardening headers on every console response."""

    def __init__(self, app: ASGIApp, csp: str) -> None:
        self.app = app
        self.csp = csp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                headers["Content-Security-Policy"] = self.csp
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "same-origin"
                # pages hold personal data: never stored; assets: kept, revalidated (an upgrade shows)
                static = scope["path"].startswith(f"{PREFIX}/static/")
                headers.setdefault("Cache-Control", "no-cache" if static else "no-store")
            await send(message)

        await self.app(scope, receive, with_headers)


def console_router(csp: str, upload_bytes: int, zip_bytes: int) -> Router:
    """Everything under /console/: sign-in and static files open, the rest behind `signed_in`."""
    guarded = Router(
        "/",
        route_handlers=[
            *fleet.ROUTES,
            *events.ROUTES,
            *people.ROUTES,
            *galleries.ROUTES,
            *sites.ROUTES,
            *keys.ROUTES,
            *notify.ROUTES,
            *loop.ROUTES,
            signin.sign_out,
            console_live,
            Router(
                "/",
                route_handlers=[*people.UPLOAD_ROUTES, *loop.UPLOAD_ROUTES],
                request_max_body_size=upload_bytes,
            ),
            Router("/", route_handlers=people.ZIP_ROUTES, request_max_body_size=zip_bytes),
        ],
        guards=[signed_in],
    )
    static = create_static_files_router(
        "/static", directories=[STATIC], name="console_static", include_in_schema=False
    )
    return Router(
        PREFIX,
        route_handlers=[signin.sign_in_page, signin.sign_in, signin.home, static, guarded],
        # every class the app maps to JSON (central/http/errors.py) gets the HTML page here instead
        exception_handlers={NotSignedIn: _to_signin, **dict.fromkeys(EXCEPTION_HANDLERS, _error_page)},
        middleware=[DefineMiddleware(ConsoleHeaders, csp=csp)],
        include_in_schema=False,
    )
