"""How the MQTT client connects and behaves: one settings value for both sides.

The edge builds it from its device file (`mqtt:` section), central from its FACEGATE_MQTT_* variables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Protocol = Literal["3.1.1", "5"]


@dataclass(frozen=True, slots=True)
class Will:
    """The Last Will the broker publishes when the connection drops without a DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message the client publishes on every connect before any other (e.g. a retained online status)."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = ""
    username: str | None = None
    password: str | None = None
    tls: bool = False  # TLS with the system's CA certificates (also on when ca_file or cert_file is set)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    protocol: Protocol = "3.1.1"
    keepalive_s: int = 30
    clean_start: bool = False  # a persistent session keeps what was published while the client was away
    session_expiry_s: int | None = None  # MQTT 5: how long the broker keeps the session (None: broker's)
    receive_maximum: int | None = None  # MQTT 5: unacknowledged messages the broker sends at once
    manual_ack: bool = False  # subscriptions made with manual_ack=True acknowledge through ack()
    shared_group: str = ""  # subscriptions made with shared=True go through $share/<group>/ when set
    backoff_min_s: float = 0.5
    backoff_max_s: float = 30.0
    refused_backoff_min_s: float = 30.0  # a refused login is retried this long after, growing ...
    refused_backoff_max_s: float = 300.0  # ... up to this (jittered)
    max_inflight: int | None = None  # QoS 1 publishes awaiting PUBACK at once (None: paho's 20)
    max_queued: int | None = None  # paho's own queue (in flight + waiting); full: publish refused
    connect_timeout_s: float = 5.0
    publish_timeout_s: float = 10.0  # the asyncio client's publish(): the PUBACK's longest wait
    will: Will | None = None

    @property
    def broker(self) -> str:
        return f"{'mqtts' if self.uses_tls else 'mqtt'}://{self.host}:{self.port}"

    @property
    def uses_tls(self) -> bool:
        return self.tls or bool(self.ca_file or self.cert_file)
