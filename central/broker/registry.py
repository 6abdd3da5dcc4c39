"""What the broker's files are made from: every edge with its broker hash, and each site's galleries."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import AsyncConnection

EDGES_SQL = "SELECT site_id, id, broker_password_hash FROM edges ORDER BY site_id, id"
GALLERY_SITES_SQL = "SELECT site_id, gallery_id FROM gallery_sites ORDER BY site_id, gallery_id"


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

    def galleries_of(self, site: str) -> tuple[str, ...]:
        return self.galleries_by_site.get(site, ())


def build_registry(
    edge_rows: Iterable[tuple[str, str, str | None]], gallery_rows: Iterable[tuple[str, str]]
) -> BrokerRegistry:
    """A registry from (site, edge, hash) and (site, gallery) rows, sorted whatever their order."""
    edges = tuple(sorted((EdgeAccount(*row) for row in edge_rows), key=lambda e: (e.site, e.edge)))
    by_site: defaultdict[str, set[str]] = defaultdict(set)
    for site, gallery in gallery_rows:
        by_site[site].add(gallery)
    return BrokerRegistry(edges, {site: tuple(sorted(names)) for site, names in sorted(by_site.items())})


def load_registry_sync(conn: psycopg.Connection[Any]) -> BrokerRegistry:
    """Read the registry in one snapshot (REPEATABLE READ is not needed: a half-applied registration only
    shows up in the next regeneration)."""
    edges = conn.execute(EDGES_SQL).fetchall()
    galleries = conn.execute(GALLERY_SITES_SQL).fetchall()
    return build_registry(edges, galleries)


async def load_registry(conn: AsyncConnection[Any]) -> BrokerRegistry:
    """load_registry_sync for central's async pool."""
    edges = await (await conn.execute(EDGES_SQL)).fetchall()
    galleries = await (await conn.execute(GALLERY_SITES_SQL)).fetchall()
    return build_registry(edges, galleries)
