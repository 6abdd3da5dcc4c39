"""Helpers for the ingest and fleet-state tests: central with MQTT on a private broker, edges, events.

`central_mqtt(settings, broker)` starts the real app (create_app, lifespan) with FACEGATE_MQTT_URL set;
`register_edge` writes a site and an edge row; `make_event` builds a facegate.event/1; `EdgeRig` is the
real edge side (outbox + MQTT client + publisher) that production uses.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from central.db import migrate
from central.settings import CentralSettings
from common.messages import Event, encode
from common.mqtt.settings import MqttSettings
from common.topics import edge_topic
from devtools.services import MqttBroker
from edge.delivery.mqtt import EdgeMqttClient
from edge.delivery.outbox import Outbox, OutboxSettings
from edge.delivery.publisher import Publisher, PublisherSettings
from tests.support.central_app import Central, start_central

SITE, EDGE = "site1", "edge1"
"""The edge the ingest tests register (tests/integration/central/conftest.py)."""

JPEG = b"\xff\xd8\xff\xe0" + b"crop" * 64


def mqtt_settings(settings: CentralSettings, broker: MqttBroker, **overrides: Any) -> CentralSettings:
    """`settings` pointed at `broker`, with a client id and shared group of the test's own."""
    base = {
        "mqtt_url": f"mqtt://{broker.host}:{broker.port}",
        "mqtt_client_id": f"central-test-{uuid.uuid4().hex[:8]}",
        "ingest_flush_s": 0.05,
        "mqtt_backoff_max_s": 1.0,
        "ingest_retry_max_s": 1.0,
    }
    return replace(settings, **{**base, **overrides})


@contextmanager
def central_mqtt(settings: CentralSettings, *, connected: bool = True) -> Iterator[Central]:
    """The started app; waits until its MQTT client is connected and subscribed."""
    with contextmanager(start_central)(settings) as central:
        if connected:
            wait_for(lambda: _connected(central), 10, "central's MQTT client did not connect")
            time.sleep(0.3)  # its SUBSCRIBEs are on the wire
        yield central


def _connected(central: Central) -> bool:
    mqtt = central.client.app.state.mqtt  # central's MQTT client, made by the lifespan
    return mqtt is not None and mqtt.connected


def register_edge(dsn: str, site: str, edge: str) -> None:
    """Migrate the database (as the app's start-up would) and add the site and the edge."""
    migrate(dsn)
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO sites (id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING", (site, site))
        conn.execute("INSERT INTO edges (site_id, id) VALUES (%s, %s) ON CONFLICT DO NOTHING", (site, edge))


def make_event(site: str, edge: str, seq: int = 0, **fields: Any) -> Event:
    base: dict[str, Any] = {
        "site": site,
        "edge": edge,
        "camera": "cam1",
        "seq": seq,
        "track_id": seq,
        "kind": "unknown",
        "person_id": None,
        "score": 0.2,
        "threshold": 0.36,
        "quality": 0.8,
        "bbox": (1.0, 2.0, 30.0, 40.0),
        "model": "sface-2021dec",
        "ts": datetime.now(UTC),
    }
    return Event(**{**base, **fields})


def stored_ids(dsn: str) -> list[str]:
    """Every event id in `events` (a list: an id stored twice would show twice)."""
    with psycopg.connect(dsn) as conn:
        return [str(row[0]) for row in conn.execute("SELECT id FROM events").fetchall()]


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout} s")
        time.sleep(0.05)


class EdgeRig:
    """The production edge side: SQLite outbox -> publisher -> MQTT client, confirmed by receipts."""

    def __init__(self, broker: MqttBroker, site: str, edge: str, tmp_path: Path) -> None:
        self.site, self.edge = site, edge
        self.topic = edge_topic(site, edge, "events")
        self.outbox = Outbox(tmp_path / f"outbox-{edge}.db", OutboxSettings(resend_after_s=3.0)).open()
        settings = MqttSettings(host=broker.host, port=broker.port, backoff_max_s=1.0)
        self.client = EdgeMqttClient(settings, site=site, edge=edge)
        self.publisher = Publisher(self.outbox, self.client, PublisherSettings(ack_timeout_s=3.0))

    def __enter__(self) -> EdgeRig:
        self.client.start()
        self.publisher.start()
        assert self.client.wait_connected(10), "edge did not connect"
        return self

    def __exit__(self, *_: object) -> None:
        self.publisher.stop()
        self.client.stop()
        self.outbox.close()

    def put(self, event: Event) -> None:
        self.outbox.put(event.id, event.camera, self.topic, encode(event))
        self.publisher.notify()

    def emit(self, count: int, start: int = 0, **fields: Any) -> list[str]:
        events = [make_event(self.site, self.edge, start + i, **fields) for i in range(count)]
        for event in events:
            self.put(event)
        return [event.id for event in events]

    def backlog(self) -> int:
        """Rows still in the outbox (deleted only on central's receipt)."""
        return self.outbox.stats().backlog
