"""The broker registry's read: every edge with its broker hash, and each site's galleries."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import AsyncConnection

from central.broker.registry import BrokerRegistry, build_registry

EDGES_SQL = "SELECT site_id, id, broker_password_hash FROM edges ORDER BY site_id, id"
GALLERY_SITES_SQL = "SELECT site_id, gallery_id FROM gallery_sites ORDER BY site_id, gallery_id"
INTEGRATIONS_SQL = "SELECT username, password_hash FROM broker_integrations ORDER BY username"


def load_registry_sync(conn: psycopg.Connection[Any]) -> BrokerRegistry:
    """Read the registry in one snapshot (REPEATABLE READ is not needed: a half-applied registration only
    shows up in the next regeneration)."""
    edges = conn.execute(EDGES_SQL).fetchall()
    galleries = conn.execute(GALLERY_SITES_SQL).fetchall()
    return build_registry(edges, galleries, conn.execute(INTEGRATIONS_SQL).fetchall())


async def load_registry(conn: AsyncConnection[Any]) -> BrokerRegistry:
    """load_registry_sync for central's async pool."""
    edges = await (await conn.execute(EDGES_SQL)).fetchall()
    galleries = await (await conn.execute(GALLERY_SITES_SQL)).fetchall()
    integrations = await (await conn.execute(INTEGRATIONS_SQL)).fetchall()
    return build_registry(edges, galleries, integrations)
