"""What the broker's files are made from: every edge with its broker hash, and each site's galleries
(read by central/broker/repository.py)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EdgeAccount:
    """One registered edge; `password_hash` is its Mosquitto `$7$` hash, None when it has none."""

    site: str
    edge: str
    password_hash: str | None


@dataclass(frozen=True, slots=True)
class BrokerRegistry:
    """Edges by (site, edge) and, per site, the galleries scoped to it (both sorted)."""

    edges: tuple[EdgeAccount, ...]
    galleries_by_site: dict[str, tuple[str, ...]]
    integrations: tuple[tuple[str, str], ...] = ()
    """(username, `$7$` hash) of the integrations' read-only logins (the watch rules' MQTT topics)."""

    def galleries_of(self, site: str) -> tuple[str, ...]:
        return self.galleries_by_site.get(site, ())


def build_registry(
    edge_rows: Iterable[tuple[str, str, str | None]],
    gallery_rows: Iterable[tuple[str, str]],
    integration_rows: Iterable[tuple[str, str]] = (),
) -> BrokerRegistry:
    """A registry from (site, edge, hash), (site, gallery) and (username, hash) rows, sorted whatever
    their order."""
    edges = tuple(sorted((EdgeAccount(*row) for row in edge_rows), key=lambda e: (e.site, e.edge)))
    by_site: defaultdict[str, set[str]] = defaultdict(set)
    for site, gallery in gallery_rows:
        by_site[site].add(gallery)
    galleries = {site: tuple(sorted(names)) for site, names in sorted(by_site.items())}
    return BrokerRegistry(edges, galleries, tuple(sorted((u, h) for u, h in integration_rows)))
