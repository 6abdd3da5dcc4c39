"""A private Mosquitto run with the files `facegate central broker-config` generates (TLS, passwords, ACL),
and a paho client that logs in over TLS and reports the broker's reason codes instead of raising."""

from __future__ import annotations

import os
import queue
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from central.auth.passwords import mosquitto_hash
from central.broker.acl import CentralAccount
from central.broker.conf import CONF_FILE, BrokerConf
from central.broker.files import write_broker_files
from central.broker.registry import BrokerRegistry
from demo.tls import CertificateFiles
from devtools.services.binaries import system_binary
from devtools.services.endpoints import MqttBroker
from devtools.services.instance import ServiceInstance
from devtools.services.mqtt import Received
from devtools.services.ports import free_port
from devtools.services.process import LocalProcess
from devtools.services.readiness import NotReadyError, ServiceStartError

TIMEOUT = 5.0
RUN_CONF = "run.conf"  # the generated mosquitto.conf plus logging (and `user root` when run as root)


@dataclass(frozen=True, slots=True)
class Login:
    username: str
    password: str


@dataclass
class SecuredBroker:
    """The instance, its process (for its pid) and what a client needs: address, CA file, central's login."""

    instance: ServiceInstance[MqttBroker]
    process: LocalProcess
    cafile: Path
    central: Login
    files: Path  # the folder holding the generated passwords, acl and mosquitto.conf

    @property
    def port(self) -> int:
        return self.instance.endpoint.port

    @property
    def pid(self) -> int:
        pid = self.process.pid
        assert pid is not None, "the broker is not running"
        return pid

    def client(self, login: Login, *, v5: bool = True, client_id: str = "") -> SecureClient:
        return SecureClient(self.port, self.cafile, login, v5=v5, client_id=client_id)


def start_secured_broker(
    workdir: Path,
    registry: BrokerRegistry,
    central: Login,
    certs: CertificateFiles,
    replicas: Sequence[Login] = (),
) -> SecuredBroker:
    """Generate the three files into `workdir/broker` and start mosquitto on them (TLS on a free port);
    `replicas`: more central logins (one per replica: the broker binds client ids to logins)."""
    binary = system_binary("mosquitto")
    if binary is None:
        raise ServiceStartError("mosquitto not found; run scripts/ensure-services.sh")
    files, data = workdir / "broker", workdir / "data"
    data.mkdir(parents=True)
    conf = BrokerConf(
        config_dir=files,
        cafile=str(certs.cafile),
        certfile=str(certs.certfile),
        keyfile=str(certs.keyfile),
        port=free_port(),
        bind_address="127.0.0.1",
        persistence_dir=str(data),
    )
    accounts = [
        CentralAccount(login.username, mosquitto_hash(login.password)) for login in (central, *replicas)
    ]
    write_broker_files(files, registry, accounts, conf)
    extra = ["log_dest stderr", "log_type all"] + (["user root"] if os.geteuid() == 0 else [])
    run_conf = workdir / RUN_CONF
    run_conf.write_text((files / CONF_FILE).read_text() + "\n".join(extra) + "\n")
    process = LocalProcess([binary, "-c", str(run_conf)], workdir / "mosquitto.log", cwd=workdir)
    endpoint = MqttBroker(host="127.0.0.1", port=conf.port)
    instance = ServiceInstance(
        f"mosquitto-tls@{conf.port}",
        endpoint,
        process,
        lambda: _probe(conf.port, certs.cafile, central),
        workdir=workdir,
        data_dir=str(data),
    )
    instance.start()
    return SecuredBroker(instance, process, certs.cafile, central, files)


def _probe(port: int, cafile: Path, central: Login) -> None:
    try:
        with SecureClient(port, cafile, central) as client:
            code = client.connected
    except OSError as err:
        raise NotReadyError(f"{type(err).__name__}: {err}") from err
    if code is None or code.is_failure:
        raise NotReadyError(f"central's login was refused: {code}")


class SecureClient:
    """Use as a context manager. `connected` is the CONNACK reason code (None: no CONNACK came); subscribe
    returns the SUBACK codes, publish the PUBACK's (v5; v3.1.1 PUBACKs carry none: "Success")."""

    def __init__(
        self, port: int, cafile: Path, login: Login, *, v5: bool = True, client_id: str = ""
    ) -> None:
        self.port = port
        self.messages: queue.Queue[Received] = queue.Queue()
        self.connected: ReasonCode | None = None
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-{uuid.uuid4().hex[:10]}",
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        )
        self._client.tls_set(ca_certs=str(cafile))
        self._client.username_pw_set(login.username, login.password)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect
        self.disconnects = 0
        self._cond = threading.Condition()
        self._acks: dict[int, list[ReasonCode]] = {}

    def __enter__(self) -> SecureClient:
        self._client.connect("127.0.0.1", self.port, keepalive=10)
        self._client.loop_start()
        with self._cond:
            self._cond.wait_for(lambda: self.connected is not None, TIMEOUT)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def subscribe(self, topic_filter: str, qos: int = 1) -> list[ReasonCode]:
        result, mid = self._client.subscribe(topic_filter, qos)
        assert mid is not None, f"subscribe failed locally: {result}"
        return self._wait_ack(mid)

    def publish(self, topic: str, payload: bytes, qos: int = 1, *, retain: bool = False) -> ReasonCode:
        info = self._client.publish(topic, payload, qos, retain=retain)
        return self._wait_ack(info.mid)[0]

    def next_message(self, timeout: float = TIMEOUT) -> Received:
        return self.messages.get(timeout=timeout)

    def _wait_ack(self, mid: int) -> list[ReasonCode]:
        with self._cond:
            if not self._cond.wait_for(lambda: mid in self._acks, TIMEOUT):
                raise TimeoutError(f"no acknowledgement for message {mid} within {TIMEOUT} s")
            return self._acks.pop(mid)

    def _on_connect(self, _c: Any, _u: Any, _f: Any, code: ReasonCode, _p: Properties | None) -> None:
        with self._cond:
            self.connected = code
            self._cond.notify_all()

    def _on_subscribe(
        self, _c: Any, _u: Any, mid: int, codes: Sequence[ReasonCode], _p: Properties | None
    ) -> None:
        with self._cond:
            self._acks[mid] = list(codes)
            self._cond.notify_all()

    def _on_publish(self, _c: Any, _u: Any, mid: int, code: ReasonCode, _p: Properties | None) -> None:
        with self._cond:
            self._acks[mid] = [code]
            self._cond.notify_all()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, _code: ReasonCode, _p: Properties | None) -> None:
        with self._cond:
            self.disconnects += 1
            self._cond.notify_all()

    def wait_disconnected(self, timeout: float = TIMEOUT) -> bool:
        """Whether the broker closed this client's connection within `timeout` seconds."""
        with self._cond:
            return self._cond.wait_for(lambda: self.disconnects > 0, timeout)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.messages.put(Received(msg.topic, bytes(msg.payload), msg.qos, msg.retain))
