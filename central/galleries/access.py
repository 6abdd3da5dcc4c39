"""Who may see and change a gallery, decided by its sites (its scope).

- Reading: an unrestricted API key sees every gallery; a site-restricted key sees the galleries
  scoped to at least one of its sites; an edge sees the galleries scoped to its site. A gallery with
  no sites is seen by unrestricted keys only.
- Changing (name, scope, members, snapshots, deletion): the key must be allowed on every site of the
  gallery (`require` per site); a gallery with no sites only by unrestricted keys. A change of scope
  needs the key to be allowed on the old sites and on the new ones.
"""

from __future__ import annotations

from collections.abc import Sequence

from central.errors import Forbidden
from central.principal import Principal, Scope, require, require_scope


def can_see(principal: Principal, sites: Sequence[str]) -> bool:
    """Whether `principal` may read a gallery scoped to `sites`."""
    if principal.kind == "edge":
        return principal.sites[0] in sites
    return not principal.sites or any(site in principal.sites for site in sites)


def require_visible(principal: Principal, gallery_id: str, sites: Sequence[str]) -> None:
    """Forbidden (403) unless `principal` may read the gallery."""
    if can_see(principal, sites):
        return
    if principal.kind == "edge":
        raise Forbidden(
            "gallery_not_allowed",
            f"edge {principal.sites[0]}/{principal.id} may not read gallery {gallery_id!r}: "
            "it is not scoped to the edge's site",
        )
    raise Forbidden(
        "site_not_allowed", f"key {principal.id} may not read gallery {gallery_id!r} (sites {list(sites)})"
    )


def require_change(principal: Principal, needed: Scope, sites: Sequence[str]) -> None:
    """Forbidden (403) unless an API key of at least `needed` may act on every one of `sites`."""
    require_scope(principal, needed)
    if not sites:
        require(principal, needed, None)
    for site in sites:
        require(principal, needed, site)
