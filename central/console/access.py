"""Who sees what in the console: viewer < operator < admin, the same order as the API's scopes.

Pages show an action only to a role that may take it (`Roles`, handed to every template); the services
behind the actions check again (central/principal.py), so a forced request is refused with 403. A
site-restricted key sees only its sites everywhere: the services filter every list by the key's sites.
"""

from __future__ import annotations

from dataclasses import dataclass

from central.principal import Principal, Scope

_RANK = {Scope.VIEWER: 1, Scope.OPERATOR: 2, Scope.ADMIN: 3}


@dataclass(frozen=True, slots=True)
class Roles:
    """What the signed-in key may do, for templates."""

    scope: str
    operate: bool
    """Enroll, erase photos, act on events, run bulk jobs."""
    admin: bool
    """Sites, edges, galleries, keys, audit; erase people."""
    all_sites: bool
    """No site restriction (people, galleries and keys span every site)."""
    sites: tuple[str, ...]

    def sees(self, site: str) -> bool:
        return self.all_sites or site in self.sites


def roles(principal: Principal) -> Roles:
    rank = _RANK.get(principal.scope, 0)
    return Roles(
        scope=principal.scope.value,
        operate=rank >= _RANK[Scope.OPERATOR],
        admin=rank >= _RANK[Scope.ADMIN],
        all_sites=not principal.sites,
        sites=principal.sites,
    )
