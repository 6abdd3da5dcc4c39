"""Mosquitto: probe, the machine's shared broker, private local/container instances with a config file."""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Sequence
from pathlib import Path

from devtools.services.endpoints import MqttBroker
from devtools.services.instance import ServiceInstance
from devtools.services.ports import free_port
from devtools.services.process import LocalProcess
from devtools.services.readiness import NotReadyError, Probe, ServiceStartError, answering, wait_for

IMAGE = "eclipse-mosquitto:2.0"
SHARED = MqttBroker(host="127.0.0.1", port=1883)
CONTAINER_CONFIG = "/mosquitto/config/mosquitto.conf"  # the image's default command reads this file
CONTAINER_DATA = "/mosquitto/data"
PERSISTENCE_FILE = "mosquitto.db"  # mosquitto writes <file>.new, then renames it: readers see whole files


def probe_for(broker: MqttBroker) -> Probe:
    """A raw MQTT 3.1.1 CONNECT/CONNACK exchange: proves the broker accepts anonymous clients."""

    def probe() -> None:
        try:
            with socket.create_connection((broker.host, broker.port), timeout=2) as sock:
                sock.sendall(_connect_packet(f"facegate-probe-{uuid.uuid4().hex[:8]}"))
                connack = _recv_exact(sock, 4)
                sock.sendall(b"\xe0\x00")  # DISCONNECT
        except OSError as exc:
            raise NotReadyError(f"{type(exc).__name__}: {exc}") from exc
        if connack[0] != 0x20 or connack[3] != 0:
            raise NotReadyError(f"broker refused the connection (CONNACK {connack.hex()})")

    return probe


def _connect_packet(client_id: str) -> bytes:
    cid = client_id.encode()
    # protocol name "MQTT", level 4 (3.1.1), flags: clean session, keep-alive 10 s
    variable_header = b"\x00\x04MQTT\x04\x02\x00\x0a"
    payload = len(cid).to_bytes(2, "big") + cid
    return bytes([0x10, len(variable_header) + len(payload)]) + variable_header + payload


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise NotReadyError("broker closed the connection before CONNACK")
        data += chunk
    return data


def find_shared() -> MqttBroker | None:
    """The machine's broker on 127.0.0.1:1883, if it accepts an anonymous CONNECT."""
    return answering(SHARED, probe_for(SHARED), SHARED.host, SHARED.port)


def render_config(
    listener: str,
    *,
    persistence_dir: str | None,
    extra_config: Sequence[str] = (),
    stay_root: bool = False,
) -> str:
    """mosquitto.conf text. Persistence saves after every change (autosave_on_changes, interval 1), so a
    retained message or QoS>0 session state is on disk soon after it is accepted and survives SIGKILL.
    `extra_config` lines come last; for single-valued options the last occurrence wins."""
    lines = ["# written by devtools/services/mosquitto.py", f"listener {listener}", "allow_anonymous true"]
    lines += [
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
    ]
    if persistence_dir is None:
        lines.append("persistence false")
    else:
        location = persistence_dir.rstrip("/") + "/"
        lines += ["persistence true", f"persistence_location {location}"]
        lines += ["autosave_on_changes true", "autosave_interval 1"]
    if stay_root:
        # started as root, mosquitto would drop to user `mosquitto`, which cannot write into tmp_path
        lines.append("user root")
    lines += list(extra_config)
    return "\n".join(lines) + "\n"


def local_instance(
    workdir: Path, *, persistence: bool = True, extra_config: Sequence[str] = (), ready_timeout: float = 15.0
) -> ServiceInstance[MqttBroker]:
    """mosquitto on 127.0.0.1:<free port>; config, log and persistence database (data/) in `workdir`."""
    binary = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if binary is None:
        raise ServiceStartError("mosquitto not found; run scripts/ensure-services.sh")
    broker = MqttBroker(host="127.0.0.1", port=free_port())
    data = workdir / "data"
    data.mkdir()
    config = workdir / "mosquitto.conf"
    config.write_text(
        render_config(
            f"{broker.port} {broker.host}",
            persistence_dir=str(data) if persistence else None,
            extra_config=extra_config,
            stay_root=os.geteuid() == 0,
        )
    )
    return ServiceInstance(
        f"mosquitto@{broker.port}",
        broker,
        LocalProcess([binary, "-c", str(config)], workdir / "mosquitto.log", cwd=workdir),
        probe_for(broker),
        workdir=workdir,
        data_dir=str(data),
        ready_timeout=ready_timeout,
    )


def container_instance(
    workdir: Path, *, persistence: bool = True, extra_config: Sequence[str] = ()
) -> ServiceInstance[MqttBroker]:
    from testcontainers.core.container import DockerContainer

    from devtools.services.docker import container_instance as wrap

    text = render_config(
        "1883", persistence_dir=CONTAINER_DATA if persistence else None, extra_config=extra_config
    )
    (workdir / "mosquitto.conf").write_text(text)  # a copy to read when debugging
    container = DockerContainer(IMAGE).with_copy_into_container(text.encode(), CONTAINER_CONFIG)
    return wrap(
        "mosquitto-container",
        container,
        container_port=1883,
        make_endpoint=MqttBroker,
        make_probe=probe_for,
        workdir=workdir,
        data_dir=CONTAINER_DATA,
    )


def wait_until_persisted(instance: ServiceInstance[MqttBroker], marker: bytes, timeout: float = 10.0) -> None:
    """Wait until the broker's persistence file contains `marker` (e.g. a retained payload), so that a
    SIGKILL from now on cannot lose it. (The "Saving in-memory database" log line precedes the write.)"""
    wait_for(
        lambda: marker in (instance.read_data_file(PERSISTENCE_FILE) or b""),
        timeout,
        f"{marker!r} in {instance.name}'s {PERSISTENCE_FILE}",
    )
