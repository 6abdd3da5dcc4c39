"""A gallery-sync edge for distribution tests, from the edge's production parts: its MQTT client
(edge/delivery/mqtt.py), gallery cache (edge/gallery/cache.py), sync client (edge/gallery/sync.py) and
snapshot fetcher; the command handling mirrors the daemon's (edge/daemon.py `_on_command`). Plus central
replicas served by uvicorn over the same database, and what central's database says a gallery holds."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg

from central.auth.repository import create_key_sync
from central.settings import CentralSettings
from common.messages import Command, decode
from common.mqtt.incoming import Incoming
from common.mqtt.settings import MqttSettings
from common.topics import edge_topic
from devtools.services.central import serve
from devtools.services.endpoints import MqttBroker
from edge.delivery.mqtt import EdgeMqttClient, Versions
from edge.gallery.cache import Gallery
from edge.gallery.snapshots import SnapshotFetcher
from edge.gallery.sync import GallerySync
from tests.support.gallery_rows import MODEL

Held = set[tuple[str, str, bytes]]  # (template id, person id, embedding)


def wait_for(check: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@dataclass
class SyncEdge:
    """One edge following one gallery; `commands` records what arrived on its commands topic."""

    gallery: Gallery
    sync: GallerySync
    client: EdgeMqttClient
    db_path: Path
    commands: list[Command] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)

    def held(self) -> Held:
        with sqlite3.connect(self.db_path) as conn:
            rows = conn.execute("SELECT template_id, person_id, embedding FROM templates").fetchall()
        return {(t, p, bytes(e)) for t, p, e in rows}

    def on_command(self, message: Incoming) -> None:
        command = decode(message.payload, Command)
        self.commands.append(command)
        if command.action == "resync_gallery" and command.gallery:
            self.sync.resync(command.gallery)
        elif command.action == "erase_person" and command.person_id:
            self.gallery.erase_person(command.person_id)


def payload_only(handler: Callable[[bytes], None]) -> Callable[[Incoming], None]:
    def handle(message: Incoming) -> None:
        handler(message.payload)

    return handle


@contextmanager
def sync_edge(
    broker: MqttBroker, central_url: str, credential: str, site: str, edge: str, gallery: str, folder: Path
) -> Iterator[SyncEdge]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{gallery}.db"
    cache = Gallery.open(path, gallery, MODEL)
    snapshots: list[str] = []
    sync = GallerySync(
        {gallery: cache}, SnapshotFetcher(central_url, credential), on_snapshot=snapshots.append, retry_s=0.2
    )
    settings = MqttSettings(host=broker.host, port=broker.port, client_id=f"edge-{uuid.uuid4().hex[:8]}")
    client = EdgeMqttClient(
        settings, site=site, edge=edge, versions=lambda: Versions(galleries={gallery: cache.version})
    )
    rig = SyncEdge(cache, sync, client, path, snapshots=snapshots)
    for topic, handler in sync.subscriptions():
        client.subscribe(topic, payload_only(handler))
    client.subscribe(edge_topic(site, edge, "commands"), rig.on_command)
    client.start()
    sync.start()
    try:
        assert client.wait_connected(10), "the edge did not connect to the broker"
        yield rig
    finally:
        sync.stop()
        client.stop()
        cache.close()


@dataclass(frozen=True)
class Replica:
    url: str
    settings: CentralSettings


@contextmanager
def replica(settings: CentralSettings, broker: MqttBroker | None, **overrides: Any) -> Iterator[Replica]:
    """Central under uvicorn; with `broker`, connected to it (so distributing) under its own client id."""
    if broker is not None:
        overrides |= {
            "mqtt_url": f"mqtt://{broker.host}:{broker.port}",
            "mqtt_client_id": f"central-{uuid.uuid4().hex[:8]}",
        }
    settings = replace(settings, **overrides)
    with serve(settings) as url:
        yield Replica(url, settings)


def admin_key(dsn: str) -> dict[str, str]:
    with psycopg.connect(dsn) as conn:
        return {"Authorization": f"Bearer {create_key_sync(conn, 'admin', 'admin').display}"}


def central_holds(dsn: str, gallery: str) -> Held:
    """The templates central's current version of `gallery` holds (its members' of its model)."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT t.id::text, t.person_id::text, t.embedding FROM templates t"
            " JOIN gallery_people gp ON gp.person_id = t.person_id JOIN galleries g ON g.id = gp.gallery_id"
            " WHERE g.id = %s AND t.model_id = g.model_id",
            (gallery,),
        ).fetchall()
    return {(t, p, bytes(e)) for t, p, e in rows}


def published(dsn: str, gallery: str) -> tuple[int, int]:
    """(current_version, published_version)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT current_version, published_version FROM galleries WHERE id = %s", (gallery,)
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])
