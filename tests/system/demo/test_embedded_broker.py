"""The demo's embedded MQTT broker (`python -m demo.embedded_broker`), run as a process on the files
`facegate central broker-config` writes (TLS with the demo's CA, `$7$` password file, ACL), against real
paho-mqtt 2 clients; and `facegate demo` on it end to end."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.enums import MQTTProtocolVersion as Protocol
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from central.auth.passwords import mosquitto_hash
from central.broker.acl import CentralAccount
from central.broker.conf import CONF_FILE, BrokerConf
from central.broker.files import write_broker_files
from central.broker.registry import build_registry
from common.errors import FacegateError
from demo.broker import CHOICE_ENV, broker_kind, find_mosquitto
from demo.tls import make_certificates
from devtools.services.ports import free_port, port_is_listening

WAIT = 5.0
MAX_PACKET = 64 * 1024
CENTRAL = ("central", "central-secret")
# More central logins (one per replica): the broker binds client ids to logins, so clients that are
# connected at the same time need logins of their own.
CENTRAL_2 = ("central-2", "central-secret")
CENTRAL_3 = ("central-3", "central-secret")
DOOR = ("north/door", "door-secret")  # reads gallery staff; writes facegate/v1/north/door/{events,...}
GATE = ("south/gate", "gate-secret")
DEMO = [str(Path(sys.executable).parent / "facegate"), "demo"]


@dataclass(frozen=True, slots=True)
class Broker:
    port: int
    cafile: Path
    log: Path


@dataclass(frozen=True, slots=True)
class Got:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool
    mid: int


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    work = tmp_path_factory.mktemp("embedded-broker")
    certs = make_certificates(work / "certs")
    registry = build_registry(
        [("north", "door", mosquitto_hash(DOOR[1])), ("south", "gate", mosquitto_hash(GATE[1]))],
        [("north", "staff")],
    )
    conf = BrokerConf(
        work / "broker", cafile=str(certs.cafile), certfile=str(certs.certfile), keyfile=str(certs.keyfile),
        port=free_port(), bind_address="127.0.0.1", persistence_dir=str(work / "data"),
        max_packet_size=MAX_PACKET,
    )  # fmt: skip
    hashed = mosquitto_hash(CENTRAL[1])
    accounts = [CentralAccount(name, hashed) for name, _ in (CENTRAL, CENTRAL_2, CENTRAL_3)]
    write_broker_files(work / "broker", registry, accounts, conf)
    log = work / "broker.log"
    with log.open("wb") as out:
        command = [sys.executable, "-m", "demo.embedded_broker", "-c", str(work / "broker" / CONF_FILE)]
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while not port_is_listening("127.0.0.1", conf.port):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield Broker(conf.port, certs.cafile, log)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class Client:
    """A paho client over TLS that reports reason codes; received messages queue in `messages`."""

    def __init__(
        self,
        broker: Broker,
        login: tuple[str, str],
        *,
        protocol: Protocol = mqtt.MQTTv5,
        client_id: str = "",
        manual_ack: bool = False,
        clean_session: bool = True,
    ) -> None:
        self.v5 = protocol == mqtt.MQTTv5
        self.port = broker.port
        self.paho = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"t-{uuid.uuid4().hex[:10]}",
            protocol=protocol,
            manual_ack=manual_ack,
            clean_session=None if self.v5 else clean_session,
        )
        self.paho.tls_set(ca_certs=str(broker.cafile))
        self.paho.username_pw_set(*login)
        self.paho.reconnect_delay_set(60, 60)  # a refused or lost connection stays lost
        self.messages: queue.Queue[Got] = queue.Queue()
        self.connack: tuple[ReasonCode, bool, Any] | None = None
        self.disconnected = threading.Event()
        self._acks: dict[int, list[ReasonCode]] = {}
        self._cond = threading.Condition()
        self.paho.on_connect = self._on_connect
        self.paho.on_subscribe = self._on_ack
        self.paho.on_publish = lambda _c, _u, mid, code, _p: self._ack(mid, [code])
        self.paho.on_message = lambda _c, _u, m: self.messages.put(
            Got(m.topic, bytes(m.payload), m.qos, bool(m.retain), bool(m.dup), m.mid)
        )
        self.paho.on_disconnect = lambda *_: self.disconnected.set()

    def connect(self, *, clean_start: bool = True, expiry: int = 0, keepalive: int = 10) -> ReasonCode:
        kwargs: dict[str, Any] = {}
        if self.v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            if expiry:
                properties.SessionExpiryInterval = expiry
            kwargs = {"clean_start": clean_start, "properties": properties}
        self.paho.connect("127.0.0.1", self.port, keepalive, **kwargs)
        self.paho.loop_start()
        with self._cond:
            assert self._cond.wait_for(lambda: self.connack is not None, WAIT), "no CONNACK"
        assert self.connack is not None
        return self.connack[0]

    @property
    def session_present(self) -> bool:
        return self.connack is not None and self.connack[1]

    def subscribe(self, topic_filter: str, qos: int = 1) -> list[int]:
        _, mid = self.paho.subscribe(topic_filter, qos)
        return [code.value for code in self._wait(mid)]

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        info = self.paho.publish(topic, payload, qos, retain=retain)
        return self._wait(info.mid)[0].value if qos else 0

    def next(self, timeout: float = WAIT) -> Got:
        return self.messages.get(timeout=timeout)

    def nothing(self, wait: float = 0.5) -> bool:
        try:
            self.messages.get(timeout=wait)
        except queue.Empty:
            return True
        return False

    def kill(self) -> None:
        """Drop the connection without DISCONNECT, as a crashed client's would end."""
        self.paho.loop_stop()
        sock = self.paho.socket()
        assert sock is not None
        sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()

    def _wait(self, mid: int | None) -> list[ReasonCode]:
        assert mid is not None
        with self._cond:
            assert self._cond.wait_for(lambda: mid in self._acks, WAIT), f"no acknowledgement of {mid}"
            return self._acks.pop(mid)

    def _ack(self, mid: int, codes: list[ReasonCode]) -> None:
        with self._cond:
            self._acks[mid] = codes
            self._cond.notify_all()

    def _on_ack(self, _c: Any, _u: Any, mid: int, codes: list[ReasonCode], _p: Any) -> None:
        self._ack(mid, list(codes))

    def _on_connect(self, _c: Any, _u: Any, flags: Any, code: ReasonCode, properties: Any) -> None:
        with self._cond:
            self.connack = (code, bool(flags.session_present), properties)
            self._cond.notify_all()


def unique() -> str:
    return f"facegate/test/{uuid.uuid4().hex[:8]}"


def test_embedded_broker_wrong_password_is_refused_as_bad_user_name_or_password(broker: Broker) -> None:
    with (
        Client(broker, (DOOR[0], "wrong")) as v5,
        Client(broker, ("nobody", "x"), protocol=mqtt.MQTTv311) as v3,
    ):
        assert v5.connect().value == 0x86
        assert v3.connect().value == 0x86  # 3.1.1 return code 4, as paho reports it


def test_embedded_broker_mqtt_3_1_is_refused_as_unsupported_protocol(broker: Broker) -> None:
    with Client(broker, CENTRAL, protocol=mqtt.MQTTv31) as client:
        assert client.connect().value == 0x84  # 3.1.1 return code 1: unacceptable protocol version


def test_embedded_broker_offers_qos_1_at_most(broker: Broker) -> None:
    with Client(broker, CENTRAL) as client:
        assert client.connect().value == 0
        assert client.connack is not None and client.connack[2].MaximumQoS == 1
        assert client.subscribe(unique() + "/#", qos=2) == [1]


def test_embedded_broker_delivers_by_wildcard_filters(broker: Broker) -> None:
    base = unique()
    with Client(broker, CENTRAL) as sub, Client(broker, CENTRAL_2) as pub:
        sub.connect(), pub.connect()
        assert sub.subscribe(f"{base}/+/events") == [1]
        assert sub.subscribe(f"{base}/north/#", qos=0) == [0]
        assert pub.publish(f"{base}/south/events", b"1") == 0
        assert pub.publish(f"{base}/north/x/y", b"2") == 0
        assert pub.publish(f"{base}/south/status", b"3") == 0x10  # no matching subscribers
        got = {(m.topic, m.payload, m.qos) for m in (sub.next(), sub.next())}
        assert got == {(f"{base}/south/events", b"1", 1), (f"{base}/north/x/y", b"2", 0)}
        assert sub.nothing()


def test_embedded_broker_shared_subscription_gives_each_message_to_one_member(broker: Broker) -> None:
    base = unique()
    with Client(broker, CENTRAL) as a, Client(broker, CENTRAL_2) as b, Client(broker, CENTRAL_3) as pub:
        for client in (a, b, pub):
            client.connect()
        assert a.subscribe(f"$share/ingest/{base}/+/events") == [1]
        assert b.subscribe(f"$share/ingest/{base}/+/events") == [1]
        for i in range(10):
            pub.publish(f"{base}/site/events", str(i).encode())
        time.sleep(0.5)
        got_a = [a.next().payload for _ in range(a.messages.qsize())]
        got_b = [b.next().payload for _ in range(b.messages.qsize())]
        assert sorted(got_a + got_b, key=int) == [str(i).encode() for i in range(10)]
        assert len(got_a) == len(got_b) == 5  # round robin


def test_embedded_broker_retained_message_reaches_new_subscribers_until_cleared(broker: Broker) -> None:
    manifest = "facegate/v1/galleries/staff/manifest"
    with Client(broker, CENTRAL) as central:
        central.connect()
        assert central.publish(manifest, b"v7", retain=True) in (0, 0x10)
        with Client(broker, DOOR) as door, Client(broker, GATE) as gate:
            door.connect(), gate.connect()
            door.subscribe(manifest)
            got = door.next()
            assert (got.payload, got.retain) == (b"v7", True)
            gate.subscribe(manifest)  # not its site's gallery: granted, but nothing is delivered
            assert gate.nothing()
        central.publish(manifest, b"", retain=True)
        with Client(broker, DOOR) as door:
            door.connect()
            door.subscribe(manifest)
            assert door.nothing()


def test_embedded_broker_publishes_the_will_when_a_client_dies(broker: Broker) -> None:
    status = "facegate/v1/north/door/status"
    with Client(broker, CENTRAL) as central:
        central.connect()
        central.subscribe(status)
        edge = Client(broker, DOOR, protocol=mqtt.MQTTv311)  # as the edges connect
        edge.paho.will_set(status, b"offline", qos=1, retain=True)
        edge.connect()
        edge.publish(status, b"online", retain=True)
        assert central.next().payload == b"online"
        edge.kill()
        got = central.next()
        assert (got.topic, got.payload) == (status, b"offline")
    with Client(broker, CENTRAL) as later:
        later.connect()
        later.subscribe(status)
        assert later.next().payload == b"offline"  # the will was retained
        later.publish(status, b"", retain=True)


def test_embedded_broker_normal_disconnect_sends_no_will(broker: Broker) -> None:
    status = "facegate/v1/south/gate/status"
    with Client(broker, CENTRAL) as central:
        central.connect()
        central.subscribe(status)
        with Client(broker, GATE) as edge:
            edge.paho.will_set(status, b"offline", qos=1)
            edge.connect()
        assert central.nothing()


def test_embedded_broker_keeps_a_persistent_session_and_redelivers_unacknowledged(broker: Broker) -> None:
    topic, name = unique() + "/events", f"persist-{uuid.uuid4().hex[:6]}"
    with Client(broker, CENTRAL, client_id=name) as sub:
        sub.connect(clean_start=True, expiry=300)
        sub.subscribe(topic)
    with Client(broker, CENTRAL_2) as pub:
        pub.connect()
        for i in range(3):
            assert pub.publish(topic, f"m{i}".encode()) == 0  # queued for the absent session
    with Client(broker, CENTRAL, client_id=name, manual_ack=True) as sub:
        sub.connect(clean_start=False, expiry=300)
        assert sub.session_present
        got = [sub.next() for _ in range(3)]
        assert [m.payload for m in got] == [b"m0", b"m1", b"m2"]
        sub.paho.ack(got[0].mid, 1)
        sub.paho.ack(got[1].mid, 1)
        time.sleep(0.3)
        sub.kill()  # m2 stays unacknowledged
    with Client(broker, CENTRAL, client_id=name, manual_ack=True) as sub:
        sub.connect(clean_start=False, expiry=300)
        again = sub.next()
        assert (again.payload, again.dup) == (b"m2", True)
        sub.paho.ack(again.mid, 1)
        assert sub.nothing()
    with Client(broker, CENTRAL, client_id=name) as sub:
        sub.connect(clean_start=True)  # ends the session
        assert not sub.session_present


def test_embedded_broker_binds_client_ids_to_logins(broker: Broker) -> None:
    """As the generated mosquitto.conf asks (`use_username_as_clientid true`): an edge logging in with its
    own password and central's client id does not throw central off; the same login twice does."""
    with Client(broker, CENTRAL, client_id="facegate-central-host") as central:
        central.connect()
        central.subscribe("facegate/v1/+/+/events")
        with Client(broker, DOOR, client_id="facegate-central-host") as door:
            assert door.connect().value == 0
            assert not central.disconnected.wait(1.0)
            assert door.publish("facegate/v1/north/door/events", b"own") == 0
            assert central.next().payload == b"own"
        with Client(broker, CENTRAL, client_id="another-id") as again:
            assert again.connect().value == 0
            assert central.disconnected.wait(WAIT)  # one login, one session: taken over


def test_embedded_broker_refuses_an_edge_publishing_under_another_edges_prefix(broker: Broker) -> None:
    with Client(broker, CENTRAL) as central, Client(broker, DOOR) as door:
        central.connect(), door.connect()
        central.subscribe("facegate/v1/+/+/events")
        assert door.publish("facegate/v1/south/gate/events", b"forged") == 0x87
        assert door.publish("facegate/v1/north/door/events", b"own") == 0
        assert central.next().payload == b"own"
        assert central.nothing()
    with Client(broker, DOOR, protocol=mqtt.MQTTv311) as edge:  # 3.1.1 has no reason code: dropped
        edge.connect()
        assert edge.publish("facegate/v1/south/gate/events", b"forged") == 0


def test_embedded_broker_disconnects_a_silent_client_after_one_and_a_half_keepalives(broker: Broker) -> None:
    status = "facegate/v1/north/door/heartbeat"
    with Client(broker, CENTRAL) as central:
        central.connect()
        central.subscribe(status)
        edge = Client(broker, DOOR)
        edge.paho.will_set(status, b"silent", qos=1)
        edge.connect(keepalive=1)
        edge.paho.loop_stop()  # no more PINGREQs; the socket stays open
        started = time.monotonic()
        got = central.next()
        assert got.payload == b"silent"
        assert 1.2 < time.monotonic() - started < 4.0
        edge.kill()


def test_embedded_broker_disconnects_a_client_sending_a_packet_over_the_limit(broker: Broker) -> None:
    with Client(broker, CENTRAL) as client:
        client.connect()
        client.paho.publish(unique(), b"x" * (MAX_PACKET + 1), qos=0)
        assert client.disconnected.wait(WAIT)


def test_embedded_broker_is_chosen_by_the_demo_when_asked_or_when_mosquitto_is_missing() -> None:
    assert broker_kind({CHOICE_ENV: "embedded"}) == "embedded"
    assert broker_kind({}) == ("mosquitto" if find_mosquitto() else "embedded")
    with pytest.raises(FacegateError, match="auto, mosquitto, embedded"):
        broker_kind({CHOICE_ENV: "rabbitmq"})


@pytest.fixture
def demo_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("demo-embedded") / "state"
    yield folder
    subprocess.run([*DEMO, "--state", str(folder), "--clean"], check=False, timeout=120)


def test_embedded_broker_runs_the_demo_end_to_end(demo_state: Path, model_dir: Path) -> None:
    env = dict(
        os.environ, FACEGATE_MODELS=str(model_dir), FACEGATE_DEMO_BROKER="embedded", PYTHONUNBUFFERED="1"
    )
    done = subprocess.run(
        [*DEMO, "--state", str(demo_state), "--duration", "120", "--until-seen"],
        capture_output=True, text=True, timeout=400, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "== broker: the embedded MQTT broker (FACEGATE_DEMO_BROKER=embedded;" in done.stdout
    assert "every enrolled person was recognised at both sites" in done.stdout
    assert (demo_state / "logs" / "embedded-broker.log").exists()
