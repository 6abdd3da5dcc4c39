"""Sign in with an API key (a form), sign out. The only console pages reachable without a session."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.enums import MediaType, RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from central.auth.errors import AuthError
from central.console.rendering import session_of
from central.console.security import COOKIE, COOKIE_PATH, is_secure, origin_allowed
from central.console.service import MAX_KEY_CHARS, ConsoleService
from central.errors import TooManyRequests


class SignInForm(msgspec.Struct, frozen=True):
    key: Annotated[str, msgspec.Meta(max_length=MAX_KEY_CHARS)] = ""


def _form(message: str | None, status: int = 200) -> Template:
    return Template(template_name="signin.html.j2", context={"message": message}, status_code=status)


@get("/", sync_to_thread=False)
def home() -> Redirect:
    return Redirect("/console/fleet", status_code=303)


@get("/signin", sync_to_thread=False)
def sign_in_page() -> Template:
    return _form(None)


@post("/signin", status_code=303)
async def sign_in(
    request: Request[Any, Any, Any],
    console: NamedDependency[ConsoleService],
    data: Annotated[SignInForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Response[Any]:
    """Check the key; on success set the session cookie and go to the fleet page."""
    if not origin_allowed(request):
        return _form("Sign in from this console's own page (the request came from elsewhere).", 403)
    try:
        token, _ = await console.sign_in(data.key, request.client.host if request.client else None)
    except AuthError as err:
        return _form(f"That key was not accepted: {err}", 401)
    except TooManyRequests:
        return _form("Too many sign-in attempts; wait a minute and try again.", 429)
    settings = request.app.state.runtime.settings
    cookie = Cookie(
        key=COOKIE,
        value=token,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=is_secure(request, settings),
        max_age=console.ttl_s,
    )
    return Response("", status_code=303, headers={"Location": "/console/fleet"}, cookies=[cookie])


@post("/signout", status_code=303)
async def sign_out(
    request: Request[Any, Any, Any], console: NamedDependency[ConsoleService]
) -> Response[Any]:
    session_of(request)  # the guard found a session
    token = request.cookies.get(COOKIE, "")
    await console.sign_out(token)
    gone = Cookie(key=COOKIE, value="", path=COOKIE_PATH, httponly=True, samesite="strict", max_age=0)
    return Response(
        "",
        status_code=303,
        headers={"Location": "/console/signin"},
        cookies=[gone],
        media_type=MediaType.TEXT,
    )
