"""Event ingest through a real broker into PostgreSQL and S3: storing, receipts, duplicates, dead letters.

Each test runs its own Mosquitto (the subscription `facegate/v1/+/+/events` must see only its events) and
central's real app with FACEGATE_MQTT_URL set. Fault tests (restarts) are in test_central_ingest_faults.py.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg

from central.settings import CentralSettings
from central.storage import S3Settings, S3Store, crop_key
from common.messages import Receipt, decode, encode
from common.topics import edge_topic
from devtools.services import MqttBroker, MqttTestClient
from tests.support.ingest_rig import (
    EDGE,
    JPEG,
    SITE,
    EdgeRig,
    central_mqtt,
    make_event,
    mqtt_settings,
    stored_ids,
    wait_for,
)


def dead_letters(dsn: str) -> list[tuple[str, str, int]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT reason, topic, payload_size FROM dead_letters ORDER BY id").fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def test_ingest_edge_outbox_events_stored_once_with_crops(
    settings: CentralSettings, broker: MqttBroker, tmp_path: Path
) -> None:
    with central_mqtt(settings), EdgeRig(broker, SITE, EDGE, tmp_path) as edge:
        ids = edge.emit(40, crop_jpeg=JPEG)
        wait_for(lambda: edge.backlog() == 0, 20, "the edge's outbox was not confirmed by receipts")
    assert sorted(stored_ids(settings.database_url)) == sorted(ids)
    with psycopg.connect(settings.database_url) as conn:
        rows = conn.execute("SELECT id, ts, crop_key FROM events").fetchall()
    assert isinstance(settings.storage, S3Settings)
    store = S3Store(settings.storage)
    assert all(key == crop_key(event_id, ts) for event_id, ts, key in rows)
    assert all(store.get(key) == JPEG for _, _, key in rows)


def test_ingest_duplicate_event_stored_once_and_receipted_twice(
    settings: CentralSettings, broker: MqttBroker
) -> None:
    event = make_event(SITE, EDGE)
    with central_mqtt(settings), MqttTestClient(broker) as client:
        client.subscribe(edge_topic(SITE, EDGE, "receipts"))
        client.publish(edge_topic(SITE, EDGE, "events"), encode(event))
        first = decode(client.next_message(10).payload, Receipt)
        client.publish(edge_topic(SITE, EDGE, "events"), encode(event))
        second = decode(client.next_message(10).payload, Receipt)
    assert first.event_ids == second.event_ids == [event.id]
    assert stored_ids(settings.database_url) == [event.id]


def test_ingest_refused_messages_dead_lettered_with_reason_and_counted(
    settings: CentralSettings, broker: MqttBroker
) -> None:
    stranger = make_event(SITE, "stranger")
    other = make_event(SITE, "edge2")
    with central_mqtt(settings) as central, MqttTestClient(broker) as client:
        client.publish(edge_topic(SITE, EDGE, "events"), b'{"schema": "facegate.event/1", "site": 1')
        client.publish(edge_topic(SITE, "stranger", "events"), encode(stranger))
        client.publish(edge_topic(SITE, EDGE, "events"), encode(other))
        wait_for(lambda: len(dead_letters(settings.database_url)) == 3, 10, "three dead letters")
        metrics = central.client.get("/metrics").text
    assert [reason for reason, _, _ in dead_letters(settings.database_url)] == [
        "malformed",
        "unknown_edge",
        "topic_mismatch",
    ]
    for reason in ("malformed", "unknown_edge", "topic_mismatch"):
        assert f'facegate_dead_letters_total{{reason="{reason}"}} 1.0' in metrics
    assert stored_ids(settings.database_url) == []


def test_ingest_dead_letter_refused_message_not_redelivered(
    settings: CentralSettings, broker: MqttBroker
) -> None:
    with central_mqtt(settings), MqttTestClient(broker) as client:
        client.publish(edge_topic(SITE, EDGE, "events"), b"not json")
        wait_for(lambda: len(dead_letters(settings.database_url)) == 1, 10, "a dead letter")
    with central_mqtt(settings):  # same session: an unacknowledged message would come again
        event = make_event(SITE, EDGE)
        with MqttTestClient(broker) as client:
            client.publish(edge_topic(SITE, EDGE, "events"), encode(event))
        wait_for(lambda: stored_ids(settings.database_url) == [event.id], 10, "the next event stored")
    assert len(dead_letters(settings.database_url)) == 1


def test_ingest_single_event_flushed_by_time(settings: CentralSettings, broker: MqttBroker) -> None:
    slow = mqtt_settings(settings, broker, ingest_batch_size=500, ingest_flush_s=0.3)
    event = make_event(SITE, EDGE)
    with central_mqtt(slow) as central, MqttTestClient(broker) as client:
        client.publish(edge_topic(SITE, EDGE, "events"), encode(event))
        wait_for(lambda: stored_ids(settings.database_url) == [event.id], 5, "the event stored")
        metrics = central.client.get("/metrics").text
    assert 'facegate_events_ingested_total{site="site1"} 1.0' in metrics
    assert "facegate_ingest_batch_size_count 1.0" in metrics


def test_ingest_event_of_erased_person_stored_as_tombstone_without_crop(
    settings: CentralSettings, broker: MqttBroker
) -> None:
    person = uuid.uuid4()
    with psycopg.connect(settings.database_url) as conn:
        conn.execute("INSERT INTO people (id, deleted_at) VALUES (%s, now())", (person,))
    event = make_event(SITE, EDGE, kind="recognized", person_id=str(person), crop_jpeg=JPEG)
    with central_mqtt(settings), MqttTestClient(broker) as client:
        client.publish(edge_topic(SITE, EDGE, "events"), encode(event))
        wait_for(lambda: stored_ids(settings.database_url) == [event.id], 10, "the event stored")
    with psycopg.connect(settings.database_url) as conn:
        erased_at, key = conn.execute("SELECT erased_at, crop_key FROM events").fetchone() or (None, "")
    assert erased_at is not None and key is None
    assert isinstance(settings.storage, S3Settings)
    assert list(S3Store(settings.storage).list("crops/")) == []
