"""HTTP routes of this package (mounted under /api/v1 by central/app.py)."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

ROUTES: list[ControllerRouterHandler] = []
