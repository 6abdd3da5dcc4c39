"""A blocking paho-mqtt 2 client for tests: connect, subscribe and publish wait for the broker's ack."""

from __future__ import annotations

import queue
import threading
import uuid
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from devtools.services.endpoints import MqttBroker


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool = False  # the broker's redelivery of a message it sent before (MQTT DUP flag)


class MqttTestClient:
    """Use as a context manager; received messages queue up in `messages` (see next_message())."""

    def __init__(
        self,
        broker: MqttBroker,
        client_id: str | None = None,
        *,
        clean_session: bool = True,
        timeout: float = 5.0,
    ) -> None:
        self.broker = broker
        self.timeout = timeout
        self.messages: queue.Queue[Received] = queue.Queue()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"facegate-test-{uuid.uuid4().hex[:10]}",
            protocol=mqtt.MQTTv311,
            clean_session=clean_session,
        )
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._cond = threading.Condition()
        self._connect_rc: ReasonCode | None = None
        self._subacks: dict[int, list[ReasonCode]] = {}

    def __enter__(self) -> MqttTestClient:
        self._client.connect(self.broker.host, self.broker.port, keepalive=10)
        self._client.loop_start()
        with self._cond:
            if not self._cond.wait_for(lambda: self._connect_rc is not None, self.timeout):
                self.__exit__(None, None, None)
                raise TimeoutError(f"no CONNACK from {self.broker} within {self.timeout}s")
        if self._connect_rc is not None and self._connect_rc.is_failure:
            self.__exit__(None, None, None)
            raise ConnectionError(f"{self.broker} refused the connection: {self._connect_rc}")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe and wait for the SUBACK; retained messages may already be queued when this returns."""
        result, mid = self._client.subscribe(topic, qos)
        if mid is None:
            raise ConnectionError(f"could not send SUBSCRIBE for {topic!r}: {result}")
        with self._cond:
            if not self._cond.wait_for(lambda: mid in self._subacks, self.timeout):
                raise TimeoutError(f"no SUBACK for {topic!r} within {self.timeout}s")
            codes = self._subacks.pop(mid)
        if any(code.is_failure for code in codes):
            raise ConnectionError(f"subscription to {topic!r} refused: {codes}")

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, *, retain: bool = False) -> None:
        """Publish and, for QoS 1/2, wait until the broker acknowledged it."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(self.timeout)

    def next_message(self, timeout: float | None = None) -> Received:
        """The next received message; raises queue.Empty after `timeout` (default: the client's timeout)."""
        return self.messages.get(timeout=self.timeout if timeout is None else timeout)

    def _on_connect(
        self, _c: mqtt.Client, _u: Any, _f: mqtt.ConnectFlags, rc: ReasonCode, _p: Properties | None
    ) -> None:
        with self._cond:
            self._connect_rc = rc
            self._cond.notify_all()

    def _on_subscribe(
        self, _c: mqtt.Client, _u: Any, mid: int, codes: list[ReasonCode], _p: Properties | None
    ) -> None:
        with self._cond:
            self._subacks[mid] = codes
            self._cond.notify_all()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.messages.put(Received(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain), bool(msg.dup)))


def clear_retained(broker: MqttBroker, topic_filter: str, settle: float = 0.2) -> list[str]:
    """Delete every retained message under `topic_filter` (e.g. "test/abc/#"); returns their topics."""
    cleared: list[str] = []
    with MqttTestClient(broker) as client:
        client.subscribe(topic_filter, qos=1)
        while True:
            try:
                message = client.next_message(timeout=settle)
            except queue.Empty:
                break
            if message.retain and message.payload:
                client.publish(message.topic, b"", qos=1, retain=True)
                cleared.append(message.topic)
    return cleared
