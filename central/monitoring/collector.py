"""`FleetCollector`: exports the last `FleetSnapshot` at each scrape, without touching the database.

The refresher (central/monitoring/refresher.py) replaces the snapshot every `fleet_refresh_s`; a
scrape only reads it, so /metrics never waits on PostgreSQL from the event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from central.monitoring.fleet import EdgeGauges, FleetSnapshot

EDGE_LABELS = ["site", "edge"]
_PER_EDGE: tuple[tuple[str, str, Callable[[EdgeGauges], float | None]], ...] = (
    ("facegate_edge_up", "1 when the edge is online (status online, seen within the window), else 0",
     lambda e: 1.0 if e.up else 0.0),
    ("facegate_edge_last_seen_seconds", "Seconds since the edge was last seen (absent: never seen)",
     lambda e: e.last_seen_s),
    ("facegate_edge_outbox_backlog", "Events in the edge's outbox not yet published (last heartbeat)",
     lambda e: e.outbox_backlog),
    ("facegate_edge_unconfirmed_events", "Events published by the edge but not yet confirmed by a receipt",
     lambda e: e.unconfirmed_events),
    ("facegate_edge_gallery_lag", "Gallery versions the edge is behind, summed over its site's galleries",
     lambda e: e.gallery_lag),
    ("facegate_edge_fps", "Frames per second over all of the edge's cameras (0 while offline)",
     lambda e: e.fps),
)  # fmt: skip


class FleetCollector(Collector):
    """Fleet and per-edge gauges, plus `facegate_dependency_up` as the refresher last found it."""

    def __init__(self) -> None:
        self.snapshot = FleetSnapshot()

    def update(self, snapshot: FleetSnapshot) -> None:
        self.snapshot = snapshot  # one reference swap: a scrape sees the old or the new snapshot whole

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snapshot = self.snapshot
        counts = GaugeMetricFamily("facegate_edges", "Registered edges by state", labels=["state"])
        online = sum(1 for edge in snapshot.edges if edge.up)
        counts.add_metric(["online"], online)
        counts.add_metric(["offline"], len(snapshot.edges) - online)
        yield counts
        for name, doc, value_of in _PER_EDGE:
            family = GaugeMetricFamily(name, doc, labels=EDGE_LABELS)
            for edge in snapshot.edges:
                value = value_of(edge)
                if value is not None:
                    family.add_metric([edge.site, edge.edge], value)
            yield family
        deps = GaugeMetricFamily(
            "facegate_dependency_up",
            "1 when the dependency answered the last fleet refresh, else 0",
            labels=["dependency"],
        )
        for dependency, up in sorted(snapshot.dependencies.items()):
            deps.add_metric([dependency], up)
        yield deps
        refreshed = GaugeMetricFamily(
            "facegate_fleet_refresh_timestamp_seconds", "Unix time of the last successful fleet refresh"
        )
        if snapshot.refreshed_at is not None:
            refreshed.add_metric([], snapshot.refreshed_at)
        yield refreshed
