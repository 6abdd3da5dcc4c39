"""The broker configured by central's generated files, live: a real Mosquitto over TLS with a CA the test
makes, edges registered through the API, real paho clients logging in with the credentials the API
returned. Each test checks one right or refusal the ACL, the password file or the TLS listener gives."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from queue import Empty

import psycopg
import pytest

from central.broker.repository import load_registry_sync
from demo.tls import make_certificates
from tests.support.central_app import Central
from tests.support.secure_broker import Login, SecureClient, SecuredBroker, start_secured_broker

FACEGATE = str(Path(sys.executable).parent / "facegate")
NOT_AUTHORIZED = 135  # MQTT 5 reason code
EDGES = {"north": ("door", "lobby"), "south": ("gate",)}
GALLERIES = {"staff": ["north"], "vip": ["south"]}


@dataclass
class Fleet:
    central: Central
    broker: SecuredBroker
    edges: dict[str, Login]

    def client(self, who: str, *, v5: bool = True, client_id: str = "") -> SecureClient:
        login = self.broker.central if who == "central" else self.edges[who]
        return self.broker.client(login, v5=v5, client_id=client_id)


def register(central: Central, site: str, edge: str) -> Login:
    response = central.client.post(f"/api/v1/sites/{site}/edges", json={"id": edge}, headers=central.admin)
    assert response.status_code == 201, response.text
    creds = response.json()["credentials"]
    return Login(creds["broker_username"], creds["broker_password"])


@pytest.fixture
def fleet(central: Central, tmp_path: Path) -> Iterator[Fleet]:
    for site in EDGES:
        assert (
            central.client.post("/api/v1/sites", json={"id": site}, headers=central.admin).status_code == 201
        )
    for gallery, sites in GALLERIES.items():
        body = {"id": gallery, "name": gallery, "sites": sites}
        assert central.client.post("/api/v1/galleries", json=body, headers=central.admin).status_code == 201
    edges = {
        f"{site}/{edge}": register(central, site, edge) for site, names in EDGES.items() for edge in names
    }
    with psycopg.connect(central.settings.database_url) as conn:
        registry = load_registry_sync(conn)
    certs = make_certificates(tmp_path / "certs")
    password = secrets.token_urlsafe(24)
    broker = start_secured_broker(
        tmp_path, registry, Login("central", password), certs, replicas=[Login("central-2", password)]
    )
    yield Fleet(central, broker, edges)
    broker.instance.close()


def no_message(client: SecureClient, wait: float = 0.5) -> bool:
    try:
        client.next_message(timeout=wait)
    except Empty:
        return True
    return False


def test_broker_edge_publishing_under_its_prefix_reaches_central(fleet: Fleet) -> None:
    with fleet.client("central") as central, fleet.client("north/door", v5=False) as edge:
        assert not central.connected.is_failure and not edge.connected.is_failure  # type: ignore[union-attr]
        central.subscribe("facegate/v1/+/+/events")
        edge.publish("facegate/v1/north/door/events", b"event-1")
        got = central.next_message()
    assert (got.topic, got.payload) == ("facegate/v1/north/door/events", b"event-1")


FORBIDDEN_WRITES = [
    "facegate/v1/north/lobby/events",  # another edge of its site
    "facegate/v1/south/gate/status",  # an edge of another site
    "facegate/v1/north/door/receipts",  # its own receipts: only central confirms events
    "facegate/v1/galleries/staff/manifest",  # its own gallery: only central publishes galleries
    "elsewhere/topic",
]


@pytest.mark.parametrize("topic", FORBIDDEN_WRITES)
def test_broker_edge_publishing_elsewhere_is_dropped(fleet: Fleet, topic: str) -> None:
    with fleet.client("central") as central, fleet.client("north/door", v5=False) as edge:
        central.subscribe("#")
        edge.publish(topic, b"forged")
        edge.publish("facegate/v1/north/door/heartbeat", b"marker")  # same connection: routed after
        first = central.next_message()
    assert (first.topic, first.payload) == ("facegate/v1/north/door/heartbeat", b"marker")
    assert "Denied PUBLISH from" in fleet.broker.instance.logs()


def test_broker_edge_publishing_on_another_edges_topic_gets_not_authorized_over_mqtt5(fleet: Fleet) -> None:
    with fleet.client("north/door") as edge:
        refused = edge.publish("facegate/v1/north/lobby/events", b"forged")
        allowed = edge.publish("facegate/v1/north/door/events", b"mine")
    assert refused.value == NOT_AUTHORIZED
    assert not allowed.is_failure


FORBIDDEN_READS = [
    "facegate/v1/galleries/vip/manifest",  # a gallery of another site
    "facegate/v1/galleries/vip/changes",
    "facegate/v1/north/lobby/receipts",  # another edge's receipts
    "facegate/v1/north/lobby/commands",
    "facegate/v1/south/gate/events",
]
WILDCARDS = {"facegate/v1/south/gate/events": "facegate/v1/+/+/events"}


# Mosquitto 2.0.11 grants every SUBSCRIBE (SUBACK QoS 1, also over MQTT 5) and checks read rights on each
# message it would deliver, retained ones included: what an edge may not read, it never receives.
@pytest.mark.parametrize("topic", FORBIDDEN_READS)
def test_broker_edge_receives_nothing_from_elsewhere(fleet: Fleet, topic: str) -> None:
    with fleet.client("central") as central, fleet.client("north/door", v5=False) as edge:
        edge.subscribe(WILDCARDS.get(topic, topic))
        edge.subscribe("facegate/v1/north/door/receipts")
        central.publish(topic, b"not for door")
        central.publish("facegate/v1/north/door/receipts", b"for door")
        first = edge.next_message()
    assert (first.topic, first.payload) == ("facegate/v1/north/door/receipts", b"for door")


@pytest.mark.parametrize("topic", FORBIDDEN_READS[:2])
def test_broker_edge_gets_no_retained_message_of_another_sites_gallery(fleet: Fleet, topic: str) -> None:
    with fleet.client("central") as central:
        central.publish(topic, b"retained manifest", retain=True)
        central.publish("facegate/v1/galleries/staff/manifest", b"staff manifest", retain=True)
    with fleet.client("north/door", v5=False) as edge:
        edge.subscribe("facegate/v1/galleries/+/manifest")
        edge.subscribe("facegate/v1/galleries/+/changes")
        first = edge.next_message()
        assert (first.topic, first.payload) == ("facegate/v1/galleries/staff/manifest", b"staff manifest")
        assert no_message(edge)


def test_broker_edge_reads_its_receipts_commands_and_galleries(fleet: Fleet) -> None:
    topics = [
        "facegate/v1/north/door/receipts",
        "facegate/v1/north/door/commands",
        "facegate/v1/galleries/staff/manifest",
        "facegate/v1/galleries/staff/changes",
    ]
    with fleet.client("central") as central, fleet.client("north/door", v5=False) as edge:
        for topic in topics:
            assert not edge.subscribe(topic)[0].is_failure
            central.publish(topic, topic.encode())
        got = [edge.next_message().topic for _ in topics]
    assert got == topics


def test_broker_central_reads_every_topic(fleet: Fleet) -> None:
    with fleet.client("central") as central:
        central.subscribe("facegate/#")
        for who in ("north/door", "south/gate"):
            with fleet.client(who) as edge:
                edge.publish(f"facegate/v1/{who}/status", b"online")
        got = {central.next_message().topic for _ in range(2)}
    assert got == {"facegate/v1/north/door/status", "facegate/v1/south/gate/status"}


def test_broker_central_shared_subscription_is_allowed(fleet: Fleet) -> None:
    with fleet.client("central") as central, fleet.client("south/gate") as edge:
        assert not central.subscribe("$share/ingest/facegate/v1/+/+/events")[0].is_failure
        edge.publish("facegate/v1/south/gate/events", b"shared")
        assert central.next_message().payload == b"shared"


def test_broker_edge_using_centrals_client_id_cannot_throw_central_off(fleet: Fleet) -> None:
    """Client ids are predictable (`facegate-central-<host>`); an edge logging in with its own password
    and central's id used to take central's session over. With ids bound to logins it gets its own."""
    with fleet.client("central", client_id="facegate-central-host") as central:
        assert central.subscribe("facegate/v1/+/+/events")[0].value == 1
        with fleet.client("north/door", client_id="facegate-central-host") as edge:
            assert edge.connected is not None and not edge.connected.is_failure
            assert not central.wait_disconnected(timeout=1.5)
            assert not edge.publish("facegate/v1/north/door/events", b"own").is_failure
            assert central.next_message().payload == b"own"


def test_broker_central_replicas_with_their_own_logins_stay_connected_side_by_side(fleet: Fleet) -> None:
    """One login per replica: two replicas never share a session, even with the same client id."""
    other = Login("central-2", fleet.broker.central.password)
    with (
        fleet.client("central", client_id="central") as first,
        fleet.broker.client(other, client_id="central") as second,
    ):
        assert second.connected is not None and not second.connected.is_failure
        assert not first.wait_disconnected(timeout=1.0) and second.disconnects == 0


def test_broker_one_login_holds_one_session(fleet: Fleet) -> None:
    """The cost of the binding: a second connection of the same login takes the session over."""
    with (
        fleet.client("north/door", client_id="a") as first,
        fleet.client("north/door", client_id="b") as second,
    ):
        assert second.connected is not None and not second.connected.is_failure
        assert first.wait_disconnected(timeout=3.0)


def test_broker_wrong_password_is_refused(fleet: Fleet) -> None:
    wrong = Login("north/door", fleet.edges["south/gate"].password)
    with fleet.broker.client(wrong) as client:
        assert client.connected is not None and client.connected.is_failure


def test_broker_plain_tcp_to_the_tls_listener_gets_no_connack(fleet: Fleet) -> None:
    login = fleet.edges["north/door"]
    with socket.create_connection(("127.0.0.1", fleet.broker.port), timeout=5) as sock:
        sock.sendall(connect_packet(login))
        try:
            answer = sock.recv(4)
        except ConnectionResetError:
            answer = b""
    assert answer == b""  # closed without a CONNACK


def connect_packet(login: Login) -> bytes:
    """MQTT 3.1.1 CONNECT with username and password, clean session, keep-alive 10 s."""

    def field(text: str) -> bytes:
        return len(text.encode()).to_bytes(2, "big") + text.encode()

    body = b"\x00\x04MQTT\x04\xc2\x00\x0a" + field("plain-probe") + field(login.username)
    body += field(login.password)
    assert len(body) < 128  # one-byte remaining length
    return bytes([0x10, len(body)]) + body


def regenerate_and_reload(fleet: Fleet) -> str:
    """`facegate central broker-config ... --reload-pid` as an operator runs it; returns its output."""
    broker = fleet.broker
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "FACEGATE_DATABASE_URL": fleet.central.settings.database_url,
        "FACEGATE_MQTT_URL": f"mqtts://central:{broker.central.password}@127.0.0.1:{broker.port}",
        "FACEGATE_BROKER_CENTRAL_USER": "central,central-2",  # one login per replica, as the fleet has
    }
    argv = [FACEGATE, "central", "broker-config", "--out", str(broker.files), "--reload-pid", str(broker.pid)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def login_result(fleet: Fleet, login: Login, want_failure: bool, timeout: float = 10.0) -> bool:
    """Whether a fresh login ends as wanted within `timeout` (the broker reloads asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        with fleet.broker.client(login) as client:
            failed = client.connected is None or client.connected.is_failure
        if failed == want_failure or time.monotonic() > deadline:
            return failed == want_failure
        time.sleep(0.2)


def test_broker_reload_admits_a_newly_registered_edge(fleet: Fleet) -> None:
    new = register(fleet.central, "south", "dock")
    assert login_result(fleet, new, want_failure=True, timeout=0)
    output = regenerate_and_reload(fleet)
    assert "sent SIGHUP" in output
    assert login_result(fleet, new, want_failure=False)
    with fleet.client("central") as central, fleet.broker.client(new) as edge:
        central.subscribe("facegate/v1/south/dock/events")
        edge.publish("facegate/v1/south/dock/events", b"hello")
        assert central.next_message().payload == b"hello"


def test_broker_reload_shuts_out_a_deleted_edge(fleet: Fleet) -> None:
    gone = fleet.edges["north/lobby"]
    assert login_result(fleet, gone, want_failure=False, timeout=0)
    deleted = fleet.central.client.delete("/api/v1/sites/north/edges/lobby", headers=fleet.central.admin)
    assert deleted.status_code == 200
    regenerate_and_reload(fleet)
    assert login_result(fleet, gone, want_failure=True)


def test_broker_reload_disconnects_a_deleted_edges_open_connection(fleet: Fleet) -> None:
    with fleet.client("north/lobby") as edge:
        assert not edge.publish("facegate/v1/north/lobby/events", b"before").is_failure
        fleet.central.client.delete("/api/v1/sites/north/edges/lobby", headers=fleet.central.admin)
        regenerate_and_reload(fleet)
        assert edge.wait_disconnected()
    assert login_result(fleet, fleet.edges["north/lobby"], want_failure=True, timeout=0)


def test_broker_reload_keeps_the_remaining_clients_connected(fleet: Fleet) -> None:
    with fleet.client("central") as central, fleet.client("north/door") as edge:
        central.subscribe("facegate/v1/+/+/events")
        fleet.central.client.delete("/api/v1/sites/north/edges/lobby", headers=fleet.central.admin)
        regenerate_and_reload(fleet)
        fleet.broker.instance.wait_for_log("Reloading config")
        assert not edge.publish("facegate/v1/north/door/events", b"after reload").is_failure
        assert central.next_message().payload == b"after reload"
        assert (edge.disconnects, central.disconnects) == (0, 0)


def test_broker_config_on_an_unchanged_registry_does_not_reload(fleet: Fleet) -> None:
    output = regenerate_and_reload(fleet)
    assert "unchanged: no reload needed" in output
    assert "Reloading config" not in fleet.broker.instance.logs()


def test_broker_integration_login_reads_only_the_watch_rule_topics(central: Central, tmp_path: Path) -> None:
    response = central.client.post("/api/v1/watch-rules/mqtt-login", headers=central.admin)
    assert response.status_code == 200, response.text
    created = response.json()
    assert created["topic_filter"] == "facegate/notify/v1/#"
    with psycopg.connect(central.settings.database_url) as conn:
        registry = load_registry_sync(conn)
    password = secrets.token_urlsafe(24)
    broker = start_secured_broker(
        tmp_path, registry, Login("central", password), make_certificates(tmp_path / "c")
    )
    integration = Login(created["username"], created["password"])
    try:
        with broker.client(Login("central", password)) as sender, broker.client(integration) as reader:
            reader.subscribe("facegate/#")
            assert reader.publish("facegate/notify/v1/x", b"forged").value == NOT_AUTHORIZED  # no writes
            sender.publish("facegate/v1/north/door/commands", b"not for integrations")
            sender.publish("facegate/notify/v1/rule-1", b"match")
            first = reader.next_message()
            assert (first.topic, first.payload) == ("facegate/notify/v1/rule-1", b"match")
            assert no_message(reader)
    finally:
        broker.instance.close()
