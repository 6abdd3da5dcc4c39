"""Who may do what: API-key scopes (admin > operator > viewer), site restriction, and edge principals.

Below every domain (auth authenticates callers into a `Principal`; audit names them; each domain checks
them), so it imports nothing of central but its errors.

401 versus 403: AuthError (401) means the credential itself is missing or invalid, so the client should
authenticate again; Forbidden (403) means the credential is fine but does not allow this request, so
retrying with the same credential will not help.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from central.errors import Forbidden

PrincipalKind = Literal["key", "edge"]


class Scope(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"
    EDGE = "edge"
    """Held only by edge principals; not part of the admin > operator > viewer order."""


_RANK = {Scope.VIEWER: 1, Scope.OPERATOR: 2, Scope.ADMIN: 3}


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    kind "key": an API key (or a token issued for one); `id` is the key prefix, `scope` one of
    viewer/operator/admin, `sites` the sites it may touch (empty: every site).
    kind "edge": an edge device; `id` is the edge id, `scope` is EDGE, `sites` is exactly its one site.
    """

    kind: PrincipalKind
    id: str
    scope: Scope
    sites: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind == "edge" and (self.scope is not Scope.EDGE or len(self.sites) != 1):
            raise ValueError("an edge principal has scope 'edge' and exactly one site")
        if self.kind == "key" and self.scope is Scope.EDGE:
            raise ValueError("an API key cannot have scope 'edge'")

    def allows_site(self, site: str) -> bool:
        """Whether this principal may see `site` (list routes filter their rows with this)."""
        return not self.sites or site in self.sites


def require(principal: Principal, needed: Scope, site: str | None) -> None:
    """Forbidden unless an API key with at least `needed` may act on `site`.

    `site=None` means the operation is not bound to one site (e.g. create a site, list all people): only
    keys without a site restriction may do it. Routes that list rows of many sites call `require_scope`
    and filter with `Principal.allows_site` instead.
    """
    require_scope(principal, needed)
    if site is None and principal.sites:
        raise Forbidden(
            "site_restricted",
            f"key {principal.id} is restricted to sites {list(principal.sites)}; "
            "this operation spans all sites, use an unrestricted key",
        )
    if site is not None and not principal.allows_site(site):
        raise Forbidden("site_not_allowed", f"key {principal.id} may not act on site {site!r}")


def require_scope(principal: Principal, needed: Scope) -> None:
    """Forbidden unless `principal` is an API key whose scope is at least `needed` (sites not checked)."""
    if needed is Scope.EDGE:
        raise ValueError("edge endpoints check access with require_edge()")
    if principal.kind == "edge":
        raise Forbidden("edge_only", f"edge {principal.id} credentials reach only edge endpoints")
    if _RANK[principal.scope] < _RANK[needed]:
        raise Forbidden(
            "insufficient_scope", f"key {principal.id} has scope {principal.scope}; this needs {needed}"
        )


def require_edge(principal: Principal, site: str, edge: str) -> None:
    """Forbidden unless `principal` is edge `edge` of `site`, or an admin key allowed on `site`.

    Admin keys are let in so an operator can fetch exactly what an edge would get when debugging it.
    """
    if principal.kind == "key":
        if principal.scope is not Scope.ADMIN or not principal.allows_site(site):
            raise Forbidden("edge_endpoint", f"only edge {site}/{edge} or an admin key may use this endpoint")
        return
    if principal.id != edge or principal.sites != (site,):
        raise Forbidden(
            "other_edge", f"edge {principal.sites[0]}/{principal.id} may not act for edge {site}/{edge}"
        )
