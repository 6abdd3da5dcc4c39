"""The edge's Prometheus metrics, in one registry the health endpoint serves.

Counters the daemon increments directly, histograms for latency per camera and stage, and gauges
read at scrape time from the components that own the numbers (outbox, sources, galleries, MQTT).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
Reading = tuple[str, str, dict[str, str], float]  # name, help, labels, value


class _Live(Collector):
    """Gauges whose values are read from a callback at each scrape."""

    def __init__(self, read: Callable[[], list[Reading]]) -> None:
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families: dict[str, GaugeMetricFamily] = {}
        for name, doc, labels, value in self._read():
            family = families.get(name)
            if family is None:
                family = families[name] = GaugeMetricFamily(name, doc, labels=sorted(labels))
            family.add_metric([labels[k] for k in sorted(labels)], value)
        yield from families.values()


class EdgeMetrics:
    """Every metric of the edge daemon."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.frames = Counter("facegate_edge_frames", "Frames processed", ["camera"], registry=r)
        self.faces = Counter("facegate_edge_faces", "Faces detected", ["camera"], registry=r)
        self.matches = Counter("facegate_edge_matches", "Faces matched to a person", ["camera"], registry=r)
        self.unknowns = Counter("facegate_edge_unknowns", "Faces that matched nobody", ["camera"], registry=r)
        self.events = Counter(
            "facegate_edge_events", "Events written to the outbox", ["camera", "kind"], registry=r
        )
        self.frame_latency = Histogram(
            "facegate_edge_frame_latency_seconds",
            "Capture to events, per frame",
            ["camera"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stage_latency = Histogram(
            "facegate_edge_stage_seconds",
            "Time per pipeline stage",
            ["camera", "stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.frames_gated = Counter(
            "facegate_edge_frames_gated",
            "Frames not given to the detector: nothing moved",
            ["camera"],
            registry=r,
        )
        self.detection_runs = Counter(
            "facegate_edge_detection_runs",
            "Detector runs, on the whole frame or on the region that moved",
            ["camera", "region"],
            registry=r,
        )
        self.embeddings_skipped = Counter(
            "facegate_edge_embeddings_skipped",
            "Faces not embedded: they continued a confirmed track embedded under tracker.reembed_s ago",
            ["camera"],
            registry=r,
        )
        self.fps = Gauge("facegate_edge_fps", "Frames processed per second", ["camera"], registry=r)
        self.bad_messages = Counter(
            "facegate_edge_bad_messages",
            "Malformed or refused MQTT messages",
            ["topic_kind", "reason"],
            registry=r,
        )
        self.camera_errors = Counter(
            "facegate_edge_camera_errors", "Camera read errors", ["camera"], registry=r
        )
        self.config_errors = Counter(
            "facegate_edge_config_errors", "Rejected configuration reloads", registry=r
        )
        self.gallery_errors = Counter(
            "facegate_edge_gallery_errors", "Refused deltas and snapshots", ["gallery", "reason"], registry=r
        )
        self.events_rejected = Counter(
            "facegate_edge_events_rejected",
            "Events central refused for good (dead-lettered) and the outbox deleted, by reason",
            ["reason"],
            registry=r,
        )
        self.snapshots = Counter(
            "facegate_edge_snapshot_downloads", "Snapshots applied", ["gallery"], registry=r
        )

    def live(self, read: Callable[[], list[Reading]]) -> None:
        """Register gauges read from `read` at each scrape (outbox backlog, gallery version, ...)."""
        self.registry.register(_Live(read))
