"""Fleet state from MQTT: the edges row follows status messages, heartbeats and the Last Will."""

from __future__ import annotations

import socket
import time
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from central.settings import CentralSettings
from common.messages import CameraState, Heartbeat, Status, encode
from common.mqtt.settings import MqttSettings
from common.topics import edge_topic
from devtools.services import MqttBroker, MqttTestClient
from edge.delivery.mqtt import EdgeMqttClient, Versions
from tests.support.ingest_rig import EDGE, SITE, central_mqtt, wait_for


def edge_row(dsn: str) -> dict[str, Any]:
    with psycopg.connect(dsn) as conn:
        cur = conn.execute(
            "SELECT status, last_seen, software_version, detector_model, recognizer_model, gallery_versions,"
            " stats, stats_at FROM edges WHERE site_id = %s AND id = %s",
            (SITE, EDGE),
        )
        row = cur.fetchone()
        assert row is not None and cur.description is not None
        return {column.name: value for column, value in zip(cur.description, row, strict=True)}


def test_fleet_state_online_status_sets_versions(settings: CentralSettings, broker: MqttBroker) -> None:
    versions = Versions(software="1.2.3", detector="yunet", recognizer="sface", galleries={"staff": 7})
    client = EdgeMqttClient(
        MqttSettings(host=broker.host, port=broker.port), site=SITE, edge=EDGE, versions=lambda: versions
    )
    with central_mqtt(settings):
        client.start()
        try:
            wait_for(lambda: edge_row(settings.database_url)["status"] == "online", 10, "edge online")
        finally:
            client.stop()
        wait_for(lambda: edge_row(settings.database_url)["status"] == "offline", 10, "offline on stop")
    row = edge_row(settings.database_url)
    assert (row["software_version"], row["detector_model"], row["recognizer_model"]) == (
        "1.2.3",
        "yunet",
        "sface",
    )
    assert row["gallery_versions"] == {"staff": 7}
    assert row["last_seen"] is not None


def test_fleet_state_heartbeat_stores_stats(settings: CentralSettings, broker: MqttBroker) -> None:
    beat = Heartbeat(
        site=SITE,
        edge=EDGE,
        uptime_s=12.0,
        cameras={"cam1": CameraState(state="running", fps=14.5, frames=100, dropped_frames=3)},
        latency_ms_p95=80.0,
        outbox_backlog=42,
        outbox_unconfirmed=5,
        galleries={"staff": 9},
    )
    with central_mqtt(settings), MqttTestClient(broker) as client:
        client.publish(edge_topic(SITE, EDGE, "heartbeat"), encode(beat), qos=0)
        wait_for(lambda: edge_row(settings.database_url)["stats_at"] is not None, 10, "stats stored")
    row = edge_row(settings.database_url)
    assert row["status"] == "online" and row["gallery_versions"] == {"staff": 9}
    assert row["stats"]["outbox_backlog"] == 42 and row["stats"]["outbox_unconfirmed"] == 5
    assert row["stats"]["cameras"]["cam1"]["fps"] == 14.5
    assert row["stats"]["cameras"]["cam1"]["dropped_frames"] == 3
    assert row["stats"]["latency_ms_p95"] == 80.0


def test_fleet_state_last_will_sets_offline(settings: CentralSettings, broker: MqttBroker) -> None:
    topic = edge_topic(SITE, EDGE, "status")
    with central_mqtt(settings), MqttTestClient(broker) as publisher:
        publisher.publish(topic, encode(Status(site=SITE, edge=EDGE, state="online")), retain=True)
        wait_for(lambda: edge_row(settings.database_url)["status"] == "online", 10, "edge online")
        doomed = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="doomed-edge")
        doomed.will_set(topic, encode(Status(site=SITE, edge=EDGE, state="offline")), qos=1, retain=True)
        doomed.connect(broker.host, broker.port, keepalive=5)
        doomed.loop(timeout=1.0)
        sock = doomed.socket()
        assert isinstance(sock, socket.socket)
        sock.shutdown(socket.SHUT_RDWR)  # gone without a DISCONNECT: the broker publishes the will
        sock.close()
        wait_for(lambda: edge_row(settings.database_url)["status"] == "offline", 10, "offline by the will")


def test_fleet_state_unknown_edge_status_dead_lettered(settings: CentralSettings, broker: MqttBroker) -> None:
    with central_mqtt(settings), MqttTestClient(broker) as client:
        status = Status(site=SITE, edge="ghost", state="online")
        client.publish(edge_topic(SITE, "ghost", "status"), encode(status))
        time.sleep(0.1)

        def reasons() -> list[str]:
            with psycopg.connect(settings.database_url) as conn:
                return [r[0] for r in conn.execute("SELECT reason FROM dead_letters").fetchall()]

        wait_for(lambda: reasons() == ["unknown_edge"], 10, "a dead letter")
    assert edge_row(settings.database_url)["status"] == "offline"
