"""What every console page gets: the signed-in session, its roles and CSRF token, and the HTML answer."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.response import Redirect, Template

from central.console.access import Roles, roles
from central.console.service import Session
from central.principal import Principal

NAV = (
    ("fleet", "Fleet"),
    ("events", "Events"),
    ("clusters", "Unknown faces"),
    ("search", "Search"),
    ("people", "People"),
    ("jobs", "Jobs"),
    ("galleries", "Galleries"),
    ("sites", "Sites"),
    ("watch", "Watch rules"),
    ("deliveries", "Deliveries"),
    ("retention", "Retention"),
    ("keys", "Keys"),
    ("audit", "Audit"),
)
ADMIN_ONLY = frozenset({"keys", "audit"})
OPERATOR_ONLY = frozenset({"search"})
ALL_SITES_ONLY = frozenset({"jobs", "keys", "audit"})
"""Pages that span every site: a site-restricted key is not offered them (central would refuse it)."""


def session_of(request: Request[Any, Any, Any]) -> Session:
    session = getattr(request.state, "console_session", None)
    if not isinstance(session, Session):
        raise RuntimeError("console pages run behind the console guard")  # a bug, not input
    return session


def principal_of(request: Request[Any, Any, Any]) -> Principal:
    return session_of(request).principal


def roles_of(request: Request[Any, Any, Any]) -> Roles:
    return roles(principal_of(request))


def page(request: Request[Any, Any, Any], template: str, status: int = 200, **context: Any) -> Template:
    """Render `templates/<template>.html.j2` for the signed-in key."""
    session = session_of(request)
    mine = roles(session.principal)
    nav = [
        (slug, title)
        for slug, title in NAV
        if (mine.admin or slug not in ADMIN_ONLY)
        and (mine.all_sites or slug not in ALL_SITES_ONLY)
        and (mine.operate or slug not in OPERATOR_ONLY)
    ]
    return Template(
        template_name=f"{template}.html.j2",
        context={
            "key": session.principal.id,
            "roles": mine,
            "csrf": session.csrf,
            "nav": nav,
            "here": template.split("_", maxsplit=1)[0],
            **context,
        },
        status_code=status,
    )


def see_other(path: str) -> Redirect:
    """After a change: the page to show (303, so the browser GETs it)."""
    return Redirect(path, status_code=303)
