"""Access control over every /api/v1 route, enumerated from the app itself (a new route is covered at once).

- no credential, or a wrong one: 401;
- a viewer key on an operator or admin route: 403;
- an edge credential on a route that is not an edge endpoint: 403;
- a key restricted to one site, on a route naming another site: 403.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from litestar.routes import HTTPRoute

from central.auth.keys import hash_secret, new_api_key
from central.http.guards import SCOPE_OPT
from central.principal import Scope
from tests.support.central_app import Central

_PARAM = re.compile(r"\{(\w+)(?::(\w+))?\}")


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    scope: Scope | None
    any_principal: bool
    key_scope: Scope | None = None
    """For edge endpoints: the least key scope also let in (none: admin keys only)."""

    @property
    def least_key_scope(self) -> Scope | None:
        if self.scope is Scope.EDGE:
            return self.key_scope or Scope.ADMIN
        return self.scope

    def url(self, site: str = "site-b") -> str:
        def fill(match: re.Match[str]) -> str:
            name, kind = match.group(1), match.group(2) or "str"
            if name in {"site", "site_id"}:
                return site
            if kind == "uuid":
                return str(uuid.uuid4())
            if kind == "int":
                return "1"
            return "x"

        return _PARAM.sub(fill, self.path)

    @property
    def names_site(self) -> bool:
        return any(m.group(1) in {"site", "site_id"} for m in _PARAM.finditer(self.path))


def api_endpoints(app: Any) -> list[Endpoint]:
    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or not route.path.startswith("/api/v1"):
            continue
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods):
                if method in {"HEAD", "OPTIONS"}:
                    continue
                scope = handler.opt.get(SCOPE_OPT)
                found.append(
                    Endpoint(
                        method,
                        route.path,
                        scope,
                        bool(handler.opt.get("any_principal")),
                        handler.opt.get("key_scope"),
                    )
                )
    return found


@pytest.fixture
def endpoints(central: Central) -> list[Endpoint]:
    found = api_endpoints(central.client.app)
    assert len(found) >= 4
    return found


@pytest.fixture
def edge_credential(central: Central) -> Iterator[str]:
    issued = new_api_key()
    with central.db() as conn:
        conn.execute("INSERT INTO sites (id, name) VALUES ('site-a', 'A'), ('site-b', 'B')")
        conn.execute(
            "INSERT INTO edges (site_id, id, api_key_prefix, api_secret_hash)"
            " VALUES ('site-a', 'e1', %s, %s)",
            (issued.prefix, hash_secret(issued.secret)),
        )
    yield issued.display


def _call(central: Central, endpoint: Endpoint, headers: dict[str, str], site: str = "site-b") -> Any:
    return central.client.request(endpoint.method, endpoint.url(site), headers=headers)


def test_access_every_api_route_declares_a_scope(endpoints: list[Endpoint]) -> None:
    undeclared = [f"{e.method} {e.path}" for e in endpoints if not isinstance(e.scope, Scope)]
    assert not undeclared


def test_access_missing_or_wrong_credential_is_401_everywhere(
    central: Central, endpoints: list[Endpoint]
) -> None:
    wrong = central.as_("fg_abcdefgh_" + "B" * 43)
    bad = []
    for endpoint in endpoints:
        for headers in ({}, wrong, central.as_("not-a-credential")):
            response = _call(central, endpoint, headers)
            if response.status_code != 401:
                bad.append(f"{endpoint.method} {endpoint.path} {headers}: {response.status_code}")
    assert not bad


def test_access_viewer_is_refused_on_operator_and_admin_routes(
    central: Central, endpoints: list[Endpoint]
) -> None:
    viewer = central.as_(central.key("viewer"))
    bad = []
    for endpoint in endpoints:
        if endpoint.any_principal or endpoint.least_key_scope is Scope.VIEWER:
            continue
        response = _call(central, endpoint, viewer)
        if response.status_code != 403:
            bad.append(f"{endpoint.method} {endpoint.path}: {response.status_code}")
    assert not bad


def test_access_edge_credential_reaches_only_edge_endpoints(
    central: Central, endpoints: list[Endpoint], edge_credential: str
) -> None:
    bad = []
    for endpoint in endpoints:
        if endpoint.any_principal or endpoint.scope is Scope.EDGE:
            continue
        response = _call(central, endpoint, central.as_(edge_credential))
        if response.status_code != 403 or response.json()["code"] != "edge_only":
            bad.append(f"{endpoint.method} {endpoint.path}: {response.status_code}")
    assert not bad


def test_access_site_restricted_key_is_refused_on_another_site(
    central: Central, endpoints: list[Endpoint], edge_credential: str
) -> None:
    restricted = central.as_(central.key("admin", ["site-a"]))
    bad = []
    for endpoint in endpoints:
        if not endpoint.names_site or endpoint.scope is Scope.EDGE:
            continue
        response = _call(central, endpoint, restricted, site="site-b")
        if response.status_code != 403:
            bad.append(f"{endpoint.method} {endpoint.path}: {response.status_code}")
    assert not bad
