"""The edge's MQTT connection: the common client (common/mqtt/client.py) plus the edge's status.

- On every connect, before anything else is published: a retained online `Status` (versions from a
  callback). The Last Will sets the retained status to offline, and so does `stop()`.
- The client id defaults to `facegate-{site}-{edge}`; a persistent session (clean session off) keeps the
  receipts, deltas and commands sent while the edge is away.
- Publishes are bounded: at most `max_inflight` (default 100) awaiting their PUBACK and `max_queued`
  (default 1000) in paho's queue; a full queue refuses the publish and the outbox keeps the row.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from common.messages import Status, encode
from common.mqtt.client import MqttClient
from common.mqtt.errors import MqttError
from common.mqtt.settings import MqttSettings, Outgoing, Will
from common.topics import edge_topic

MAX_INFLIGHT = 100
MAX_QUEUED = 1000


@dataclass(frozen=True, slots=True)
class Versions:
    """What the online status reports."""

    software: str = ""
    detector: str = ""
    recognizer: str = ""
    galleries: Mapping[str, int] = field(default_factory=dict)


class EdgeMqttClient(MqttClient):
    """The common client with the edge's retained status, Last Will and bounds."""

    def __init__(
        self, settings: MqttSettings, *, site: str, edge: str, versions: Callable[[], Versions] = Versions
    ) -> None:
        self.site, self.edge = site, edge
        self.status_topic = edge_topic(site, edge, "status")
        self._versions = versions
        settings = replace(
            settings,
            client_id=settings.client_id or f"facegate-{site}-{edge}",
            max_inflight=settings.max_inflight if settings.max_inflight is not None else MAX_INFLIGHT,
            max_queued=settings.max_queued if settings.max_queued is not None else MAX_QUEUED,
            will=Will(self.status_topic, self._status("offline"), qos=1, retain=True),
        )
        super().__init__(settings, first=self._online, log_fields={"edge": edge})

    def stop(self, timeout: float = 5.0) -> None:
        """Publish the offline status, then disconnect cleanly and join the network thread."""
        if self.connected:
            with contextlib.suppress(MqttError):  # gone meanwhile: the Last Will says offline instead
                self.publish(self.status_topic, self._status("offline"), retain=True).wait(timeout / 2)
        super().stop(timeout)

    def _online(self) -> list[Outgoing]:
        return [Outgoing(self.status_topic, self._status("online"), qos=1, retain=True)]

    def _status(self, state: Literal["online", "offline"]) -> bytes:
        v = self._versions() if state == "online" else Versions()
        return encode(
            Status(
                site=self.site,
                edge=self.edge,
                state=state,
                software=v.software,
                detector=v.detector,
                recognizer=v.recognizer,
                galleries=dict(v.galleries),
            )
        )
