"""The fleet overview: every site and edge, the alerts firing, events per hour per site. The panel
refreshes itself (htmx polls /console/fleet/panel)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.response import Template

from central.console.chart import hourly_chart
from central.console.rendering import page, principal_of
from central.events.service import EventService
from central.fleet.schemas import EdgeRead
from central.fleet.service import FleetService
from central.galleries.service import GalleryService

CHART_HOURS = 24
MAX_EDGES = 500
BACKLOG_ALERT = 1000


@dataclass(frozen=True, slots=True)
class Alert:
    severity: str
    subject: str
    message: str


@dataclass(frozen=True, slots=True)
class GalleryLag:
    gallery: str
    edge_version: int | None
    central_version: int

    @property
    def lag(self) -> int:
        return self.central_version - (self.edge_version or 0)


def lags(edge: EdgeRead, central: dict[str, int]) -> list[GalleryLag]:
    """The edge's version of each gallery it reports (or should hold) against central's."""
    reported = {str(k): v for k, v in edge.gallery_versions.items() if isinstance(v, int)}
    names = sorted(set(reported) | {g for g in central if g in reported})
    return [GalleryLag(g, reported.get(g), central.get(g, reported.get(g) or 0)) for g in names]


def alerts(edges: list[EdgeRead], central: dict[str, int]) -> list[Alert]:
    """What the console flags: offline edges, edges behind a gallery, outbox backlogs."""
    found: list[Alert] = []
    for edge in edges:
        name = f"{edge.site}/{edge.id}"
        if edge.status == "offline":
            found.append(Alert("critical", name, "offline: no heartbeat or status since its last one"))
        for lag in lags(edge, central):
            if lag.lag > 0:
                found.append(Alert("warning", name, f"gallery {lag.gallery} is {lag.lag} versions behind"))
        backlog = edge.stats.get("outbox_backlog")
        if isinstance(backlog, int) and backlog >= BACKLOG_ALERT:
            found.append(Alert("warning", name, f"{backlog} events waiting in its outbox"))
    return found


async def _context(
    request: Request[Any, Any, Any], fleet: FleetService, events: EventService, galleries: GalleryService
) -> dict[str, Any]:
    principal = principal_of(request)
    sites = await fleet.list_sites(principal)
    edges = (await fleet.list_edges(principal, None, None, MAX_EDGES, None)).items
    central = {
        g.id: g.current_version for g in (await galleries.list_galleries(principal, "", 500, None)).items
    }
    counts = await events.hourly(principal, CHART_HOURS)
    return {
        "sites": sites,
        "edges": [(edge, lags(edge, central)) for edge in edges],
        "alerts": alerts(edges, central),
        "chart": hourly_chart(counts, CHART_HOURS),
    }


@get("/fleet")
async def fleet_page(
    request: Request[Any, Any, Any],
    fleet: NamedDependency[FleetService],
    events: NamedDependency[EventService],
    galleries: NamedDependency[GalleryService],
) -> Template:
    return page(request, "fleet", **await _context(request, fleet, events, galleries))


@get("/fleet/panel")
async def fleet_panel(
    request: Request[Any, Any, Any],
    fleet: NamedDependency[FleetService],
    events: NamedDependency[EventService],
    galleries: NamedDependency[GalleryService],
) -> Template:
    return page(request, "fleet_panel", **await _context(request, fleet, events, galleries))


ROUTES = [fleet_page, fleet_panel]
