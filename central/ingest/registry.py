"""Which (site, edge) pairs are registered: a short-lived cache of the `edges` table for ingest."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from psycopg import AsyncConnection

from central.ingest import repository as repo

MIN_REFRESH_S = 1.0
"""A miss reloads the registry at most this often (a newly registered edge is known within ~1 s)."""


class EdgeRegistry:
    """`known(conn, site, edge)`: cached for `ttl_s`; a miss reloads sooner (at most every second), so a new
    edge is accepted quickly and a storm of forged messages costs at most one query a second."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._edges: frozenset[tuple[str, str]] = frozenset()
        self._loaded_at: float | None = None

    async def known(self, conn: AsyncConnection[Any], site: str, edge: str) -> bool:
        now = self._clock()
        age = None if self._loaded_at is None else now - self._loaded_at
        if age is None or age > self.ttl_s or ((site, edge) not in self._edges and age > MIN_REFRESH_S):
            await self.reload(conn)
        return (site, edge) in self._edges

    async def known_of(
        self, conn: AsyncConnection[Any], edges: Iterable[tuple[str, str]]
    ) -> frozenset[tuple[str, str]]:
        """The registered edges, current enough to judge every pair of `edges` (one check per batch:
        reloaded when stale, or when one of them is missing and the last load is over a second old)."""
        now = self._clock()
        age = None if self._loaded_at is None else now - self._loaded_at
        if age is None or age > self.ttl_s or (age > MIN_REFRESH_S and not self._edges.issuperset(edges)):
            await self.reload(conn)
        return self._edges

    async def reload(self, conn: AsyncConnection[Any]) -> None:
        self._edges = await repo.registered_edges(conn)
        self._loaded_at = self._clock()
