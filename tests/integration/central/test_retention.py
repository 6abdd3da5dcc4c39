"""Retention on real PostgreSQL and S3: events across 14 months (and older, in the default partition) at
three sites with different policies, their crops in the store, and old audit, dead-letter and delivery
rows. Each policy removes exactly what is older than it allows, rows and objects, and nothing newer;
partitions past every site's policy are dropped whole; two replicas running at once remove nothing twice.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from central.cleanup.service import CleanupService
from central.db.partitions import ensure_event_partitions, month_partition
from central.db.pool import open_async_pool
from central.metrics import Metrics
from central.retention.runner import Removed, RetentionRunner, RetentionSettings
from central.settings import CentralSettings
from central.storage import ObjectStore, crop_key
from common.topics import edge_topic
from devtools.services import MqttBroker
from tests.support.central_app import Central
from tests.support.ingest_rig import EDGE, SITE, EdgeRig, central_mqtt, stored_ids, wait_for
from tests.support.notify_receivers import mqtt_subscriber

NOW = datetime.now(UTC)
DAYS = [*range(0, 430, 10), 490]  # 0 .. 420 days ago, and one ~16 months ago (default partition)
POLICY = {"a": (90, 30), "b": (300, 100)}  # site: (events_days, crops_days); c takes the defaults
DEFAULTS = {
    "events_days": 60,
    "crops_days": 20,
    "audit_days": 100,
    "dead_letters_days": 7,
    "deliveries_days": 30,
}


@dataclass(frozen=True)
class Row:
    id: uuid.UUID
    site: str
    age: int
    key: str


def insert_events(central: Central, store: ObjectStore) -> list[Row]:
    rows = []
    with psycopg.connect(central.settings.database_url, autocommit=True) as conn:
        ensure_event_partitions(conn, NOW, months_ahead=1, months_behind=14)
        for site in ("a", "b", "c"):
            for age in DAYS:
                ident, ts = uuid.uuid4(), NOW - timedelta(days=age, hours=1)
                key = crop_key(ident, ts)
                store.put(key, b"\xff\xd8\xff" + site.encode(), "image/jpeg")
                conn.execute(
                    "INSERT INTO events (id, ts, site_id, edge_id, camera, track_id, kind, score, threshold,"
                    " quality, bbox, model_id, crop_key) VALUES (%s, %s, %s, 'e', 'cam', 1, 'unknown', 0.1,"
                    " 0.3, 0.9, '{0,0,10,10}', 'sface', %s)",
                    (ident, ts, site, key),
                )
                conn.execute(  # the operator loop's rows of the event (issue 15): they go with it
                    "INSERT INTO event_embeddings (event_id, ts, site_id, edge_id, camera, model_id,"
                    " embedding) VALUES (%s, %s, %s, 'e', 'cam', 'sface', array_fill(0.1::real, ARRAY[128]))",
                    (ident, ts, site),
                )
                conn.execute(
                    "INSERT INTO event_corrections (event_id, action, person_id, created_by)"
                    " VALUES (%s, 'new_person', gen_random_uuid(), 't')",
                    (ident,),
                )
                rows.append(Row(ident, site, age, key))
        for row in (min(rows, key=lambda r: r.age), max(rows, key=lambda r: r.age)):  # one cluster each
            cluster = conn.execute(
                "INSERT INTO unknown_clusters (model_id, centroid, members, first_seen, last_seen)"
                " VALUES ('sface', array_fill(0.1::real, ARRAY[128]), 1, now(), now()) RETURNING id"
            ).fetchone()
            assert cluster is not None
            conn.execute(
                "UPDATE event_embeddings SET cluster_id = %s WHERE event_id = %s", (cluster[0], row.id)
            )
    return rows


def set_policies(central: Central) -> None:
    for site in ("a", "b", "c"):
        central.client.post("/api/v1/sites", json={"id": site}, headers=central.admin)
    assert central.client.put("/api/v1/retention", json=DEFAULTS, headers=central.admin).status_code == 200
    for site, (events, crops) in POLICY.items():
        body = {"events_days": events, "crops_days": crops}
        response = central.client.put(f"/api/v1/sites/{site}/retention", json=body, headers=central.admin)
        assert response.status_code == 200, response.text


def keeps(row: Row) -> tuple[bool, bool]:
    """(row kept, crop kept) by the row's site's policy."""
    events, crops = POLICY.get(row.site, (DEFAULTS["events_days"], DEFAULTS["crops_days"]))
    return row.age < events, row.age < crops


def old_logs(central: Central) -> None:
    with psycopg.connect(central.settings.database_url, autocommit=True) as conn:
        for age in (50, 150):
            conn.execute(
                "INSERT INTO audit_log (ts, actor, action)"
                " VALUES (now() - make_interval(days => %s), 't', 'x')",
                (age,),
            )
        for age in (3, 10):
            conn.execute(
                "INSERT INTO dead_letters (received_at, topic, payload, payload_size, reason, site_id)"
                " VALUES (now() - make_interval(days => %s), 't', '\\x00', 1, 'r', 'a')",
                (age,),
            )
        rule = conn.execute(
            "INSERT INTO watch_rules (name, unknown) VALUES ('r', true) RETURNING id"
        ).fetchone()
        assert rule is not None
        for age, status in ((10, "sent"), (40, "sent"), (40, "pending")):
            conn.execute(
                "INSERT INTO deliveries (rule_id, channel, event_id, event_ts, site_id, payload, status,"
                " created_at) VALUES (%s, 'webhook', gen_random_uuid(), now(), 'c', '{}', %s,"
                " now() - make_interval(days => %s))",
                (rule[0], status, age),
            )


def run_replicas(central: Central, count: int) -> list[Removed | None]:
    """`count` runners, each with its own pool (as replicas), started at once."""
    store = central.client.app.state.runtime.store

    async def go() -> list[Removed | None]:
        pools = [await open_async_pool(central.settings.database_url, 1, 3) for _ in range(count)]
        try:
            metrics = [Metrics() for _ in pools]
            runners = [
                RetentionRunner(p, CleanupService(p, store, m), m.retention, RetentionSettings(batch=7))
                for p, m in zip(pools, metrics, strict=True)
            ]
            return list(await asyncio.gather(*(r.run_once() for r in runners)))
        finally:
            for pool in pools:
                await pool.close()

    return asyncio.run(go())


def partitions(central: Central) -> set[str]:
    with psycopg.connect(central.settings.database_url) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'events'::regclass"
        ).fetchall()
    return {str(r[0]) for r in rows}


@pytest.fixture
def loaded(central: Central) -> tuple[Central, list[Row]]:
    set_policies(central)
    rows = insert_events(central, central.client.app.state.runtime.store)
    old_logs(central)
    return central, rows


def test_retention_removes_exactly_what_each_policy_allows_and_drops_old_partitions(
    loaded: tuple[Central, list[Row]],
) -> None:
    central, rows = loaded
    store = central.client.app.state.runtime.store
    before = partitions(central)
    [removed] = run_replicas(central, 1)
    assert removed is not None
    print(f"\nremoved: partitions {removed.partitions}, rows {removed.rows}, objects {removed.objects}")
    # partitions: every month ending before 300 days ago (site b's, the longest policy) went whole
    line = NOW - timedelta(days=300)
    expected_dropped = {name for name in before if name.startswith("events_p") and _end(name) <= line}
    assert expected_dropped and set(removed.partitions) == expected_dropped
    assert partitions(central) == before - expected_dropped
    with psycopg.connect(central.settings.database_url) as conn:
        stored = {r[0]: r[1] for r in conn.execute("SELECT id, crop_key FROM events").fetchall()}
        ledger = {r[0] for r in conn.execute("SELECT id FROM event_ids").fetchall()}
        embedded = {r[0] for r in conn.execute("SELECT event_id FROM event_embeddings").fetchall()}
        corrected = {r[0] for r in conn.execute("SELECT event_id FROM event_corrections").fetchall()}
        clusters = conn.execute("SELECT count(*) FROM unknown_clusters").fetchone()
        audit = [r[0] for r in conn.execute("SELECT action FROM audit_log WHERE actor = 't'").fetchall()]
        dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
        deliveries = conn.execute("SELECT status, count(*) FROM deliveries GROUP BY 1 ORDER BY 1").fetchall()
    for row in rows:
        row_kept, crop_kept = keeps(row)
        assert (row.id in stored) == row_kept, (row.site, row.age)
        assert (row.id in ledger) == row_kept, (row.site, row.age)
        if row_kept:
            assert (stored[row.id] is not None) == crop_kept, (row.site, row.age)
        assert store.exists(row.key) == crop_kept, (row.site, row.age, row.key)
    assert removed.rows["events"] == sum(1 for r in rows if not keeps(r)[0])
    assert embedded == corrected == set(stored)  # embeddings and corrections went with their events
    assert clusters == (1,) and removed.rows["unknown_clusters"] == 1  # the cluster of the oldest sighting
    assert audit == ["x"] and dead == (1,) and deliveries == [("pending", 1), ("sent", 1)]
    metrics = central.client.get("/metrics").text
    assert "facegate_retention_oldest_row_seconds" in metrics


def test_retention_two_replicas_at_once_remove_nothing_twice(loaded: tuple[Central, list[Row]]) -> None:
    central, rows = loaded
    results = run_replicas(central, 2)
    print(f"\nreplicas: {[None if r is None else r.rows for r in results]}")
    done = [r for r in results if r is not None]
    if len(done) == 2:  # one finished before the other took the lock: the second found nothing left
        assert min(sum(r.rows.values()) for r in done) == 0
    total = sum(r.rows.get("events", 0) for r in done)
    assert total == sum(1 for r in rows if not keeps(r)[0])
    assert sum(len(r.partitions) for r in done) == len({p for r in done for p in r.partitions})
    again = run_replicas(central, 1)[0]
    assert again is not None and sum(again.rows.values()) == 0 and again.partitions == []


def _end(name: str) -> datetime:
    start = datetime(int(name[8:12]), int(name[12:14]), 1, tzinfo=UTC)
    return month_partition(start, 1).start


def test_retention_no_crops_tells_the_edges_and_ingest_drops_expired_events(
    settings: CentralSettings, broker: MqttBroker, tmp_path: Path
) -> None:
    with (
        central_mqtt(settings) as central,
        mqtt_subscriber(broker, edge_topic(SITE, EDGE, "commands")) as got,
    ):
        viewer = central.key("viewer")
        url = f"/api/v1/sites/{SITE}/retention"
        assert central.client.put(url, json={"crops_days": 0}, headers=central.as_(viewer)).status_code == 403
        too_long = central.client.put(url, json={"events_days": 30, "crops_days": 40}, headers=central.admin)
        assert too_long.status_code == 422 and too_long.json()["code"] == "crops_outlive_events"
        policy = central.client.put(url, json={"events_days": 30, "crops_days": 0}, headers=central.admin)
        assert policy.status_code == 200 and policy.json()["crops_days"] == 0
        wait_for(lambda: bool(got), 10, "the reload_config command")
        command = json.loads(got[0])
        assert (command["action"], command["crop_policy"]) == ("reload_config", "none")
        with EdgeRig(broker, SITE, EDGE, tmp_path) as edge:
            edge.emit(1, ts=datetime.now(UTC) - timedelta(days=40))  # past the 30 days
            [new] = edge.emit(1, start=1)
            wait_for(lambda: edge.backlog() == 0, 10, "both receipted")
        assert stored_ids(central.settings.database_url) == [str(new)]
        assert "facegate_retention_events_refused_total 1.0" in central.client.get("/metrics").text
        with central.db() as conn:
            audit = conn.execute("SELECT action FROM audit_log WHERE action LIKE 'retention.%'").fetchall()
        assert audit == [("retention.site",)]
