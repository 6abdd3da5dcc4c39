"""Metrics of the live-event fan-out, created once per app in its registry (central/http/metrics.py)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class LiveMetrics:
    """Connected clients, clients dropped, publish failures and the Redis subscription's state."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.clients = Gauge(
            "facegate_live_clients",
            "WebSocket clients connected to /ws/events on this replica",
            registry=registry,
        )
        self.dropped = Counter(
            "facegate_live_dropped_clients",
            "WebSocket clients disconnected by the server, by reason (slow: their queue overflowed)",
            ["reason"],
            registry=registry,
        )
        self.publish_failures = Counter(
            "facegate_live_publish_failures",
            "Event batches that could not be published to Redis (delivered on this replica only)",
            registry=registry,
        )
        self.subscribed = Gauge(
            "facegate_live_subscribed",
            "1 while this replica's Redis subscription to the live-event channel is active",
            registry=registry,
        )
