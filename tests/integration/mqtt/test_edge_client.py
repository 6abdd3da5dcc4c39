"""The edge MQTT client against real private Mosquitto brokers: acks, status, will, resubscribe, TLS."""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from common.backoff import Backoff
from common.messages import Heartbeat, Receipt, Status, decode, encode
from common.mqtt.errors import MqttError, NotConnectedError
from common.mqtt.settings import MqttSettings
from common.topics import edge_topic
from devtools.services import MosquittoFactory, MqttBroker, MqttTestClient
from devtools.services.ports import free_port
from edge.delivery.mqtt import EdgeMqttClient, Versions
from edge.delivery.publisher import Heartbeats
from tests.support.paths import REPO

SITE, EDGE = "site1", "edge1"
STATUS = edge_topic(SITE, EDGE, "status")
VERSIONS = Versions(
    software="0.1.0", detector="yunet-2023mar", recognizer="sface-2021dec", galleries={"g1": 7}
)


def _settings(broker: MqttBroker, **overrides: object) -> MqttSettings:
    base: dict[str, object] = {"host": broker.host, "port": broker.port, "keepalive_s": 5}
    base |= {"backoff_min_s": 0.05, "backoff_max_s": 0.4, **overrides}
    return MqttSettings(**base)  # type: ignore[arg-type]


@contextmanager
def _edge(target: MqttBroker | MqttSettings, *, connect: bool = True) -> Iterator[EdgeMqttClient]:
    settings = target if isinstance(target, MqttSettings) else _settings(target)
    client = EdgeMqttClient(settings, site=SITE, edge=EDGE, versions=lambda: VERSIONS)
    client.start()
    try:
        if connect:
            assert client.wait_connected(5), "edge client did not connect"
        yield client
    finally:
        client.stop()


def _status(watcher: MqttTestClient) -> Status:
    return decode(watcher.next_message().payload, Status)


def _wait(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_backoff_doubles_caps_and_jitters_then_resets() -> None:
    backoff = Backoff(0.5, 4.0, rng=random.Random(7))
    delays = [backoff.next() for _ in range(6)]
    caps = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert all(cap / 2 <= delay <= cap for delay, cap in zip(delays, caps, strict=True))
    assert len(set(delays)) == len(delays)
    backoff.reset()
    assert backoff.next() <= 0.5


def test_mqtt_client_connect_publishes_retained_online_status_with_versions(
    mosquitto_factory: MosquittoFactory,
) -> None:
    broker = mosquitto_factory().endpoint
    with _edge(broker), MqttTestClient(broker) as watcher:
        watcher.subscribe(STATUS)
        status = _status(watcher)
    assert (status.state, status.site, status.edge) == ("online", SITE, EDGE)
    assert (status.software, status.detector, status.recognizer) == (
        "0.1.0",
        "yunet-2023mar",
        "sface-2021dec",
    )
    assert status.galleries == {"g1": 7}


def test_mqtt_client_stop_publishes_retained_offline_status(mosquitto_factory: MosquittoFactory) -> None:
    broker = mosquitto_factory().endpoint
    with _edge(broker):
        pass
    with MqttTestClient(broker) as watcher:
        watcher.subscribe(STATUS)
        message = watcher.next_message()
    assert message.retain and decode(message.payload, Status).state == "offline"


_KILLED_EDGE = """
import sys, time
from edge.delivery.mqtt import EdgeMqttClient
from common.mqtt.settings import MqttSettings
settings = MqttSettings(host="127.0.0.1", port=int(sys.argv[1]), keepalive_s=5)
client = EdgeMqttClient(settings, site="site1", edge="edge1")
client.start()
assert client.wait_connected(5)
print("connected", flush=True)
time.sleep(60)
"""


def test_mqtt_client_killed_process_last_will_sets_status_offline(
    mosquitto_factory: MosquittoFactory,
) -> None:
    broker = mosquitto_factory().endpoint
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    edge = subprocess.Popen(
        [sys.executable, "-c", _KILLED_EDGE, str(broker.port)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert edge.stdout is not None and edge.stdout.readline().strip() == "connected"
        with MqttTestClient(broker) as watcher:
            watcher.subscribe(STATUS)
            assert _status(watcher).state == "online"
            os.kill(edge.pid, signal.SIGKILL)
            edge.wait(5)
            message = watcher.next_message()
    finally:
        if edge.poll() is None:
            os.kill(edge.pid, signal.SIGKILL)
            edge.wait(5)
    assert decode(message.payload, Status).state == "offline"
    with MqttTestClient(broker) as late:
        late.subscribe(STATUS)
        retained = late.next_message()
    assert retained.retain and decode(retained.payload, Status).state == "offline"


def test_mqtt_client_publish_completes_on_puback_and_reaches_subscriber(
    mosquitto_factory: MosquittoFactory,
) -> None:
    broker = mosquitto_factory().endpoint
    topic = edge_topic(SITE, EDGE, "events")
    with MqttTestClient(broker) as consumer, _edge(broker) as client:
        consumer.subscribe(topic)
        deliveries = [client.publish(topic, f"event {i}".encode()) for i in range(50)]
        assert all(delivery.wait(5) for delivery in deliveries)
        received = [consumer.next_message().payload for _ in range(50)]
    assert received == [f"event {i}".encode() for i in range(50)]
    assert client.counters.pubacks >= 50 and client.counters.publishes >= 50


def test_mqtt_client_publish_while_disconnected_raises_and_nothing_is_sent_later(
    mosquitto_factory: MosquittoFactory,
) -> None:
    instance = mosquitto_factory()
    broker = instance.endpoint
    topic = edge_topic(SITE, EDGE, "events")
    with MqttTestClient(broker, "watcher", clean_session=False) as watcher:
        watcher.subscribe(topic)
    with _edge(broker) as client:
        instance.stop()
        assert _wait(lambda: not client.connected)
        with pytest.raises(NotConnectedError):
            client.publish(topic, b"while offline")
        instance.start()
        assert client.wait_connected(5)
        assert client.publish(topic, b"after reconnect").wait(5)
        with MqttTestClient(broker, "watcher", clean_session=False) as watcher:
            assert watcher.next_message().payload == b"after reconnect"
            with pytest.raises(queue.Empty):
                watcher.next_message(timeout=0.3)
    assert client.counters.reconnects == 1


def test_mqtt_client_connection_lost_fails_unacknowledged_deliveries(
    mosquitto_factory: MosquittoFactory,
) -> None:
    instance = mosquitto_factory(persistence=False)
    topic = edge_topic(SITE, EDGE, "events")
    with _edge(instance.endpoint) as client:
        instance.pause()  # frozen: it acknowledges nothing, so every publish below stays in flight
        deliveries = [client.publish(topic, b"p" * 2000) for _ in range(900)]  # max_queued is 1000
        instance.kill()
        assert _wait(lambda: not client.connected, 5)
        with pytest.raises(NotConnectedError):
            client.publish(topic, b"after the kill")
        assert _wait(lambda: all(d.acknowledged or d.error is not None for d in deliveries), 5)
    failed = [d for d in deliveries if d.error is not None]
    assert len(failed) >= 900, "the publishes in flight when the broker died must fail, not vanish"
    assert all(isinstance(d.error, NotConnectedError) for d in failed)


def test_mqtt_client_publish_beyond_bounded_paho_queue_raises(mosquitto_factory: MosquittoFactory) -> None:
    broker = mosquitto_factory(persistence=False).endpoint
    topic = edge_topic(SITE, EDGE, "events")
    with _edge(dataclasses.replace(_settings(broker), max_inflight=1, max_queued=3)) as client:
        deliveries, refused = [], 0
        for _ in range(300):
            try:
                deliveries.append(client.publish(topic, b"x" * 100))
            except MqttError as err:
                assert not isinstance(err, NotConnectedError)
                refused += 1
        assert all(delivery.wait(5) for delivery in deliveries)
    assert refused > 0


def test_mqtt_client_reconnect_resubscribes_remembered_subscriptions(
    mosquitto_factory: MosquittoFactory,
) -> None:
    instance = mosquitto_factory(persistence=False)  # the restarted broker forgets every subscription
    broker = instance.endpoint
    topic = edge_topic(SITE, EDGE, "commands")
    got: queue.Queue[bytes] = queue.Queue()
    with _edge(broker) as client:
        client.subscribe(topic, lambda message: got.put(message.payload))
        instance.restart()
        with MqttTestClient(broker) as central:
            central.publish(topic, b"resync", retain=True)
            assert got.get(timeout=5) == b"resync"
            central.publish(topic, b"", retain=True)
    assert client.counters.reconnects == 1


def test_mqtt_client_malformed_message_is_logged_truncated_counted_and_loop_continues(
    mosquitto_factory: MosquittoFactory, caplog: pytest.LogCaptureFixture
) -> None:
    broker = mosquitto_factory().endpoint
    topic = edge_topic(SITE, EDGE, "receipts")
    receipts: queue.Queue[list[str]] = queue.Queue()
    caplog.set_level(logging.WARNING, logger="common.mqtt")
    with _edge(broker) as client, MqttTestClient(broker) as central:
        client.subscribe(topic, lambda message: receipts.put(decode(message.payload, Receipt).event_ids))
        assert _wait(lambda: client.counters.connects == 1)
        time.sleep(0.2)  # let the SUBACK come back
        central.publish(topic, b"{not json" + b"A" * 5000)
        central.publish(topic, encode(Receipt(event_ids=["ev-1"])))
        assert receipts.get(timeout=5) == ["ev-1"]
    assert client.counters.malformed == 1
    (record,) = [r for r in caplog.records if r.getMessage() == "mqtt_malformed_message"]
    logged = str(getattr(record, "payload", ""))
    assert len(logged) < 200 and "(5009 bytes)" in logged


def test_mqtt_client_broker_down_at_start_retries_until_it_comes_up(
    mosquitto_factory: MosquittoFactory,
) -> None:
    instance = mosquitto_factory(start=False)
    with _edge(instance.endpoint, connect=False) as client:
        time.sleep(0.5)
        assert not client.connected and client.login_error is None
        instance.start()
        assert client.wait_connected(5)


def test_heartbeats_publish_qos0_every_interval(mosquitto_factory: MosquittoFactory) -> None:
    broker = mosquitto_factory().endpoint
    with _edge(broker) as client, MqttTestClient(broker) as central:
        central.subscribe(edge_topic(SITE, EDGE, "heartbeat"), qos=0)
        beats = Heartbeats(
            client, 0.1, lambda: Heartbeat(site=SITE, edge=EDGE, uptime_s=1.0, outbox_backlog=3)
        )
        beats.start()
        messages = [central.next_message() for _ in range(3)]
        beats.stop()
    assert all(m.qos == 0 for m in messages)
    assert decode(messages[0].payload, Heartbeat).outbox_backlog == 3
    assert client.counters.pubacks == 2  # online and offline status; QoS 0 sends are not acknowledgements


def _tls_files(tmp: Path) -> dict[str, Path]:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=facegate-test-ca",
    )
    for name in ("server", "client"):
        run("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        (tmp / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-out", f"{name}.crt",
            "-days", "1", "-extfile", f"{name}.ext", "-CAcreateserial")  # fmt: skip
    subprocess.run(["mosquitto_passwd", "-c", "-b", "pw", "edge1", "s3cret"], cwd=tmp, check=True)
    return {
        name: tmp / name for name in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key", "pw")
    }


def test_mqtt_client_tls_with_client_certificate_and_password_connects(
    mosquitto_factory: MosquittoFactory, service_backend: str, tmp_path: Path
) -> None:
    if service_backend == "docker":
        pytest.skip("the TLS listener reads certificate files from the host")
    files = _tls_files(tmp_path)
    port = free_port()
    mosquitto_factory(
        extra_config=[
            f"password_file {files['pw']}",
            f"listener {port} 127.0.0.1",
            f"cafile {files['ca.crt']}",
            f"certfile {files['server.crt']}",
            f"keyfile {files['server.key']}",
            "require_certificate true",
        ]
    )
    tls = MqttBroker(host="127.0.0.1", port=port)
    settings = _settings(tls, ca_file=str(files["ca.crt"]), cert_file=str(files["client.crt"]))
    settings = dataclasses.replace(
        settings, key_file=str(files["client.key"]), username="edge1", password="s3cret"
    )
    with _edge(settings) as client:
        assert client.publish(edge_topic(SITE, EDGE, "events"), b"over tls").wait(5)


def test_mqtt_client_publishes_from_many_threads_over_tls_while_receiving_keep_the_stream_whole(
    mosquitto_factory: MosquittoFactory, service_backend: str, tmp_path: Path
) -> None:
    """Only the network thread writes to the socket: four threads publishing at once while the client
    acknowledges a flood of incoming messages must not interleave bytes (the broker would drop the
    connection for a protocol error), over TLS where writes are often partial."""
    if service_backend == "docker":
        pytest.skip("the TLS listener reads certificate files from the host")
    files = _tls_files(tmp_path)
    port = free_port()
    plain = mosquitto_factory(
        extra_config=[
            f"listener {port} 127.0.0.1",
            f"cafile {files['ca.crt']}",
            f"certfile {files['server.crt']}",
            f"keyfile {files['server.key']}",
        ]
    ).endpoint
    tls = _settings(MqttBroker(host="127.0.0.1", port=port), ca_file=str(files["ca.crt"]))
    topic = edge_topic(SITE, EDGE, "commands")
    received: queue.Queue[bytes] = queue.Queue()
    payload = b"x" * 20_000  # several TLS records per message: partial writes happen
    flood = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"flood-{os.getpid()}")
    flood.max_inflight_messages_set(0)  # no limit: the incoming PUBACKs keep the network thread writing
    flood.max_queued_messages_set(0)
    flood.connect(plain.host, plain.port)
    flood.loop_start()
    with _edge(dataclasses.replace(tls, max_queued=20_000)) as client:
        client.subscribe(topic, lambda message: received.put(message.payload))
        time.sleep(0.3)  # SUBACK
        sock = client._paho.socket()  # a small send buffer: writes are partial, as on a slow link
        assert isinstance(sock, socket.socket)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        failures: queue.Queue[str] = queue.Queue()

        def publish_many(worker: int) -> None:
            events = edge_topic(SITE, EDGE, "events")
            deliveries = [client.publish(events, payload + bytes([worker])) for _ in range(150)]
            if not all(d.wait(30) for d in deliveries):
                failures.put(f"worker {worker}: a publish was not acknowledged")

        workers = [threading.Thread(target=publish_many, args=(w,)) for w in range(4)]
        for worker in workers:
            worker.start()
        for i in range(2000):
            flood.publish(topic, b"%d" % i, qos=1)
        for worker in workers:
            worker.join(60)
        assert _wait(lambda: received.qsize() == 2000, 30), received.qsize()
        assert failures.empty(), failures.get()
        assert client.counters.reconnects == 0, "the broker dropped the connection"
    flood.disconnect()
    flood.loop_stop()
