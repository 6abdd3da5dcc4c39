"""HTTP routes of this package (mounted under /api/v1 by central/app.py)."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from central.fleet import edges, sites

ROUTES: list[ControllerRouterHandler] = [
    sites.list_sites,
    sites.create_site,
    sites.get_site,
    sites.rename_site,
    sites.delete_site,
    edges.list_edges,
    edges.get_edge,
    edges.register_edge,
    edges.rotate_credentials,
    edges.delete_edge,
]
