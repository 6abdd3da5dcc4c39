"""Central's Prometheus metrics, in a registry of their own per app (tests build many apps).

`Metrics` is one of the plain resources (central/runtime.py): made by `create_app`, exported by /metrics,
counted by the services and workers that are handed it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from central.monitoring.collector import FleetCollector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
INGEST_LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 86400.0)
BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)


class Metrics:
    """Requests and latencies per route, enrollment outcomes, rate-limit refusals, pool usage."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "facegate_http_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "facegate_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.enrollments = Counter(
            "facegate_enrollment_photos",
            "Enrollment photos processed, by outcome (accepted or the rejection reason)",
            ["outcome"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "facegate_rate_limited",
            "Requests refused with 429 by the per-key rate limit",
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "facegate_auth_failures",
            "Requests refused with 401, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.object_delete_failures = Counter(
            "facegate_object_delete_failures",
            "Face-data objects (photos, crops, snapshots) that could not be deleted; they stay queued",
            registry=self.registry,
        )
        self.events_ingested = Counter(
            "facegate_events_ingested",
            "Events committed by ingest (new ones, not duplicates), by site",
            ["site"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "facegate_dead_letters",
            "MQTT messages refused by ingest and stored in dead_letters, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.ingest_lag = Histogram(
            "facegate_ingest_lag_seconds",
            "Commit time minus event time of each event ingested",
            buckets=INGEST_LAG_BUCKETS,
            registry=self.registry,
        )
        self.ingest_batch_size = Histogram(
            "facegate_ingest_batch_size",
            "Events per committed ingest batch",
            buckets=BATCH_SIZE_BUCKETS,
            registry=self.registry,
        )
        self.ingest_waiting = Gauge(
            "facegate_ingest_waiting_messages",
            "Event messages received by ingest and not yet acknowledged (queued or being stored)",
            registry=self.registry,
        )
        self.ingest_stalled = Gauge(
            "facegate_ingest_stalled_seconds",
            "Seconds event messages have waited with no ingest batch acknowledged (0: none waits)",
            registry=self.registry,
        )
        self.dead_letters_dropped = Counter(
            "facegate_dead_letters_dropped",
            "Dead letters deleted by the cap per edge (count or bytes) or their retention, by cause",
            ["cause"],
            registry=self.registry,
        )
        self.mqtt_logins_refused = Gauge(
            "facegate_mqtt_logins_refused",
            "Logins the MQTT broker refused to this replica since it started (retried with a long backoff)",
            registry=self.registry,
        )

        self.fleet = FleetCollector()
        """Fleet and per-edge gauges, refreshed by central/monitoring/refresher.py."""
        self.registry.register(self.fleet)
        self.live = LiveMetrics(self.registry)
        self.notify = NotifyMetrics(self.registry)
        self.retention = RetentionMetrics(self.registry)

    def watch_pool(self, stats: Callable[[], dict[str, int]]) -> None:
        """Export the connection pool's counters (psycopg_pool `get_stats()`) at every scrape."""
        self.registry.register(_PoolCollector(stats))


class LiveMetrics:
    """The live-event fan-out's (central/live/): connected clients, clients dropped, publish failures and
    the Redis subscription's state."""

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


class NotifyMetrics:
    """Deliveries of watch-rule matches (central/notify/): attempts by channel and outcome, the backlog."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.enqueued = Counter(
            "facegate_notify_enqueued",
            "Deliveries written with their events by ingest (one per rule, channel and event)",
            registry=registry,
        )
        self.attempts = Counter(
            "facegate_notify_attempts",
            "Delivery attempts by channel and outcome (sent; failed: retried later; dead: retries used up)",
            ["channel", "outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "facegate_notify_latency_seconds",
            "From the delivery's creation (the event's commit) to its successful send, by channel",
            ["channel"],
            buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 15.0, 60.0, 300.0, 1800.0),
            registry=registry,
        )
        self.pending = Gauge(
            "facegate_notify_pending",
            "Deliveries waiting to be sent (first try or retry), as the last pass of this replica saw",
            registry=registry,
        )
        self.oldest_pending = Gauge(
            "facegate_notify_oldest_pending_seconds",
            "Age of the oldest pending delivery (0: none), as the last pass of this replica saw",
            registry=registry,
        )


class RetentionMetrics:
    """Retention runs (central/retention/): rows and objects removed, partitions dropped, oldest rows."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.rows = Counter(
            "facegate_retention_rows_removed",
            "Rows removed by the retention policies, by table (events dropped with a partition included)",
            ["table"],
            registry=registry,
        )
        self.objects = Counter(
            "facegate_retention_objects_removed",
            "Stored objects (face crops) queued for deletion by the retention policies",
            registry=registry,
        )
        self.partitions_dropped = Counter(
            "facegate_retention_partitions_dropped",
            "Monthly event partitions dropped whole because every site's policy allowed it",
            registry=registry,
        )
        self.oldest = Gauge(
            "facegate_retention_oldest_row_seconds",
            "Age of the oldest row kept after the last retention run on this replica, by table (0: empty)",
            ["table"],
            registry=registry,
        )
        self.refused = Counter(
            "facegate_retention_events_refused",
            "Events ingest refused because they were already older than their site's policy",
            registry=registry,
        )


class _PoolCollector(Collector):
    def __init__(self, stats: Callable[[], dict[str, int]]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self.stats()
        gauge = GaugeMetricFamily(
            "facegate_db_pool_connections", "PostgreSQL pool connections by state", labels=["state"]
        )
        size = stats.get("pool_size", 0)
        available = stats.get("pool_available", 0)
        gauge.add_metric(["open"], size)
        gauge.add_metric(["idle"], available)
        gauge.add_metric(["in_use"], max(0, size - available))
        gauge.add_metric(["waiting"], stats.get("requests_waiting", 0))
        yield gauge
        limits = GaugeMetricFamily("facegate_db_pool_max", "PostgreSQL pool maximum size")
        limits.add_metric([], stats.get("pool_max", 0))
        yield limits
