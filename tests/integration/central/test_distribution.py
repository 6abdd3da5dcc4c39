"""Gallery distribution (central/distribution/) against a private Mosquitto, central under uvicorn and
an edge made of the production sync client and gallery cache (tests/support/distribution_rig.py)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
import pytest
from psycopg.types.json import Jsonb

from central.db import migrate
from central.distribution.deltas import StoredSnapshot
from central.distribution.snapshot_policy import snapshot_due
from central.settings import CentralSettings
from common.messages import Command, GalleryChange, GalleryManifest, decode
from common.topics import edge_topic, gallery_topic
from devtools.services import MqttTestClient
from devtools.services.endpoints import MqttBroker
from devtools.services.factories import MosquittoFactory
from tests.support.distribution_rig import admin_key, central_holds, published, replica, sync_edge, wait_for
from tests.support.gallery_rows import add_edge, add_site, add_template, enroll

GALLERY, SITE, EDGE = "staff", "north", "gate-1"


@dataclass
class World:
    settings: CentralSettings
    broker: MqttBroker
    credential: str
    rng: np.random.Generator

    @property
    def dsn(self) -> str:
        return self.settings.database_url

    def api(self, url: str) -> httpx.Client:
        return httpx.Client(base_url=url + "/api/v1", headers=admin_key(self.dsn), timeout=30)

    def edge(self, url: str, folder: Path, edge: str = EDGE, credential: str = "") -> Any:
        return sync_edge(self.broker, url, credential or self.credential, SITE, edge, GALLERY, folder)


@pytest.fixture
def world(central_settings: CentralSettings, mosquitto_factory: MosquittoFactory) -> Iterator[World]:
    settings = replace(central_settings, distribution_poll_s=0.2, resync_check_s=0.3, resync_grace_s=3600.0)
    migrate(settings.database_url)
    with psycopg.connect(settings.database_url) as conn:
        add_site(conn, SITE)
        credential = add_edge(conn, SITE, EDGE)
        conn.execute(
            "INSERT INTO galleries (id, name, model_id) VALUES (%s, 'Staff', 'sface-2021dec')", (GALLERY,)
        )
        conn.execute("INSERT INTO gallery_sites (gallery_id, site_id) VALUES (%s, %s)", (GALLERY, SITE))
    yield World(settings, mosquitto_factory().endpoint, credential, np.random.default_rng(5))


def add_people(world: World, api: httpx.Client, count: int, templates: int = 2) -> list[str]:
    """People created through the API, given templates, then added to the gallery through the API."""
    people = []
    for _ in range(count):
        response = api.post("/people", json={"external_id": uuid.uuid4().hex})
        assert response.status_code == 201, response.text
        person = response.json()["id"]
        with psycopg.connect(world.dsn) as conn:
            for _ in range(templates):
                add_template(conn, uuid.UUID(person), world.rng)
        assert api.put(f"/galleries/{GALLERY}/people/{person}").status_code == 200
        people.append(person)
    return people


def converged(world: World, edge: Any) -> bool:
    current, _ = published(world.dsn, GALLERY)
    return bool(edge.gallery.version == current and edge.held() == central_holds(world.dsn, GALLERY))


def test_distribution_edge_reaches_central_version_with_the_same_templates(
    world: World, tmp_path: Path
) -> None:
    with replica(world.settings, world.broker) as central, world.edge(central.url, tmp_path) as edge:
        api = world.api(central.url)
        people = add_people(world, api, 3)
        enroll(world.dsn, uuid.UUID(people[0]), world.rng)
        template = next(t for t, p, _ in central_holds(world.dsn, GALLERY) if p == people[1])
        assert api.delete(f"/people/{people[1]}/templates/{template}").status_code == 200
        assert api.delete(f"/galleries/{GALLERY}/people/{people[2]}").status_code == 200
        wait_for(lambda: converged(world, edge), what="the edge at central's version")
    assert published(world.dsn, GALLERY) == (6, 6)
    assert len(edge.held()) == 2 + 1 + 1


def test_distribution_commits_while_no_distributor_runs_are_published_after_restart(
    world: World, tmp_path: Path
) -> None:
    with replica(world.settings, None) as central:  # no broker: commits, nothing publishes
        add_people(world, world.api(central.url), 2)
    assert published(world.dsn, GALLERY) == (2, 0)
    with replica(world.settings, world.broker) as central, world.edge(central.url, tmp_path) as edge:
        wait_for(lambda: converged(world, edge), what="the edge at central's version")
        assert published(world.dsn, GALLERY) == (2, 2)


def test_distribution_two_replicas_publish_each_version_once_and_in_order(world: World) -> None:
    with MqttTestClient(world.broker) as watcher:
        watcher.subscribe(gallery_topic(GALLERY, "changes"))
        with replica(world.settings, world.broker) as one, replica(world.settings, world.broker):
            api = world.api(one.url)
            people = add_people(world, api, 2, templates=0)
            for _ in range(12):
                enroll(world.dsn, uuid.UUID(people[len(people) % 2]), world.rng)
            wait_for(lambda: published(world.dsn, GALLERY) == (14, 14), what="all published")
            time.sleep(0.5)
        versions = [decode(m.payload, GalleryChange).version for m in drain(watcher)]
    assert versions == list(range(1, 15))


def test_distribution_late_edge_gets_the_snapshot_then_later_deltas(world: World, tmp_path: Path) -> None:
    settings = replace(world.settings, snapshot_every_changes=3, resync_grace_s=0.3)
    with replica(settings, world.broker) as central:
        api = world.api(central.url)
        add_people(world, api, 3)  # published one by one: snapshot at 1, manifest at 3
        wait_for(lambda: published(world.dsn, GALLERY)[1] == 3, what="published")
        with world.edge(central.url, tmp_path) as edge:
            wait_for(lambda: edge.gallery.version == 1, what="the edge on the manifest's snapshot")
            report_versions(world, {GALLERY: edge.gallery.version})  # as its heartbeat would
            wait_for(lambda: converged(world, edge), what="the late edge at central's version")
            assert [c.action for c in edge.commands] == ["resync_gallery"]
            add_people(world, api, 2)
            wait_for(lambda: converged(world, edge) and edge.gallery.version == 5, what="the deltas")
            assert edge.snapshots == [GALLERY, GALLERY]


def report_versions(world: World, versions: dict[str, int], edge: str = EDGE) -> None:
    """What the ingest stores from an edge's status and heartbeats."""
    with psycopg.connect(world.dsn) as conn:
        conn.execute(
            "UPDATE edges SET status = 'online', gallery_versions = %s WHERE id = %s", (Jsonb(versions), edge)
        )


def test_distribution_erase_removes_the_person_on_the_edge_and_sends_an_erase_command(
    world: World, tmp_path: Path
) -> None:
    with replica(world.settings, world.broker) as central, world.edge(central.url, tmp_path) as edge:
        api = world.api(central.url)
        erased, kept = add_people(world, api, 2)
        wait_for(lambda: converged(world, edge), what="both people on the edge")
        assert api.delete(f"/people/{erased}").status_code == 200
        wait_for(lambda: any(c.action == "erase_person" for c in edge.commands), what="the erase command")
        wait_for(lambda: converged(world, edge), what="the erasure's version on the edge")
        assert {p for _, p, _ in edge.held()} == {kept}
        assert [c.person_id for c in edge.commands if c.action == "erase_person"] == [erased]
        with psycopg.connect(world.dsn) as conn:
            assert conn.execute("SELECT count(*) FROM distribution_commands").fetchone() == (0,)


def test_distribution_edge_stuck_behind_gets_one_resync_command_and_a_current_snapshot(world: World) -> None:
    settings = replace(world.settings, resync_grace_s=0.5, resync_min_interval_s=600.0)
    with MqttTestClient(world.broker) as stuck, replica(settings, world.broker) as central:
        stuck.subscribe(edge_topic(SITE, EDGE, "commands"))
        stuck.subscribe(gallery_topic(GALLERY, "manifest"))
        add_people(world, world.api(central.url), 3)
        report_versions(world, {GALLERY: 1})
        time.sleep(2.5)
        messages = drain(stuck)
    commands = [decode(m.payload, Command) for m in messages if m.topic.endswith("/commands")]
    assert [(c.action, c.gallery) for c in commands] == [("resync_gallery", GALLERY)]
    last = decode([m for m in messages if m.topic.endswith("/manifest")][-1].payload, GalleryManifest)
    assert (last.version, last.snapshot_version) == (3, 3)


def test_distribution_upsert_of_a_template_deleted_before_publishing_is_left_out(
    world: World, tmp_path: Path
) -> None:
    with replica(world.settings, None) as central:
        api = world.api(central.url)
        (person,) = add_people(world, api, 1, templates=1)
        template = enroll(world.dsn, uuid.UUID(person), world.rng)
        assert api.delete(f"/people/{person}/templates/{template}").status_code == 200
    with MqttTestClient(world.broker) as watcher:
        watcher.subscribe(gallery_topic(GALLERY, "changes"))
        with replica(world.settings, world.broker) as central:
            wait_for(lambda: published(world.dsn, GALLERY) == (3, 3), what="published")
            with world.edge(central.url, tmp_path) as edge:  # joins after: takes the snapshot
                wait_for(lambda: converged(world, edge), what="the edge at central's version")
            changes = [decode(m.payload, GalleryChange) for m in drain(watcher)]
    assert [(c.version, len(c.upserts), c.deleted_templates) for c in changes] == [
        (1, 1, []),
        (2, 0, []),
        (3, 0, [str(template)]),
    ]


def test_snapshot_due_after_k_changes_after_an_hour_or_when_forced() -> None:
    settings = replace_settings(snapshot_every_changes=5, snapshot_every_s=3600.0)
    now = datetime(2025, 1, 1, tzinfo=UTC)
    fresh = StoredSnapshot(10, "k", "0" * 64, 1, now)
    old = StoredSnapshot(10, "k", "0" * 64, 1, now - timedelta(hours=2))
    assert snapshot_due(settings, 12, None, now, force=False)
    assert not snapshot_due(settings, 14, fresh, now, force=False)
    assert snapshot_due(settings, 15, fresh, now, force=False)
    assert snapshot_due(settings, 11, old, now, force=False)
    assert snapshot_due(settings, 11, fresh, now, force=True)
    assert not snapshot_due(settings, 10, old, now, force=True)
    assert not snapshot_due(settings, 0, None, now, force=True)


def replace_settings(**overrides: Any) -> CentralSettings:
    from central.storage import FileSettings

    return replace(CentralSettings("", "", FileSettings(Path(), "")), **overrides)


def drain(client: MqttTestClient) -> list[Any]:
    out = []
    while not client.messages.empty():
        out.append(client.messages.get_nowait())
    return out
