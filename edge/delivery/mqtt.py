"""The edge's MQTT client (paho-mqtt 2): acknowledged publishes, remembered subscriptions, status.

- Every QoS 1 publish returns a `Delivery` that completes on the broker's PUBACK (matched by message id)
  or fails when the connection drops first. While disconnected `publish` raises `NotConnectedError`: nothing
  is queued inside paho across connections (its leftovers are dropped on every connect), because the
  outbox is the durable queue and the caller keeps the row pending.
- On every connect: a retained online `Status` (versions from a callback), then every remembered
  subscription again. The Last Will sets the retained status to offline.
- A refused login (bad user name or password, not authorized) stops reconnecting: `fatal_error` says
  why. Other failures back off exponentially (capped, with jitter) and retry.
- Incoming messages go to the handlers whose filter matches; a handler raising `MessageError` is a
  malformed message: logged with a truncated payload and counted, never fatal.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from common.backoff import Backoff
from common.errors import FacegateError
from common.messages import MessageError, Status, encode
from common.mqtt.payload import truncate
from common.mqtt.reasons import LOGIN_REFUSED
from common.topics import edge_topic

log = logging.getLogger(__name__)
Handler = Callable[[str, bytes], None]
EARLY_ACK_S = 1.0  # an unclaimed PUBACK older than this is not an early one (mids wrap at 65535)


class MqttError(FacegateError):
    """A publish could not be handed to the broker."""


class NotConnectedError(MqttError):
    """The client is not connected; the message was not sent and nothing keeps it."""


class LoginRefusedError(MqttError):
    """The broker refused the credentials; the client stopped reconnecting."""


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = ""  # default: facegate-{site}-{edge}
    username: str | None = None
    password: str | None = None
    tls: bool = False  # TLS with the system's CA certificates (also on when ca_file or cert_file is set)
    ca_file: str | None = None  # TLS is on when ca_file or cert_file is set
    cert_file: str | None = None
    key_file: str | None = None
    keepalive_s: int = 30
    clean_session: bool = False  # a persistent session keeps receipts sent while the edge is away
    backoff_min_s: float = 0.5
    backoff_max_s: float = 30.0
    max_inflight: int = 100  # QoS 1 publishes awaiting PUBACK at once
    max_queued: int = 1000  # paho's own queue (in flight + waiting); a full queue refuses the publish
    connect_timeout_s: float = 5.0


@dataclass(frozen=True, slots=True)
class Versions:
    """What the online status reports."""

    software: str = ""
    detector: str = ""
    recognizer: str = ""
    galleries: Mapping[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class MqttCounters:
    connects: int = 0
    reconnects: int = 0
    publishes: int = 0
    pubacks: int = 0
    malformed: int = 0
    handler_errors: int = 0
    loop_errors: int = 0


class Delivery:
    """One publish: done when the broker acknowledged it (`acknowledged`) or it failed (`error`)."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self.error: MqttError | None = None

    def wait(self, timeout: float | None = None) -> bool:
        """True once acknowledged; False on failure or when `timeout` passes first."""
        return self._done.wait(timeout) and self.error is None

    @property
    def acknowledged(self) -> bool:
        return self._done.is_set() and self.error is None

    def resolve(self, error: MqttError | None = None) -> None:
        if not self._done.is_set():
            self.error = error
            self._done.set()


class MqttClient:
    """start() connects in a background thread and keeps reconnecting until stop() or a refused login."""

    def __init__(
        self, settings: MqttSettings, *, site: str, edge: str, versions: Callable[[], Versions] = Versions
    ) -> None:
        self.settings, self.site, self.edge = settings, site, edge
        self.status_topic = edge_topic(site, edge, "status")
        self.counters = MqttCounters()
        self.fatal_error: LoginRefusedError | None = None
        self._versions = versions
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._connected = False
        self._generation = 0
        self._deliveries: dict[int, Delivery] = {}
        self._early_acks: dict[int, float] = {}  # mid -> when its PUBACK came before publish() returned
        self._handlers: dict[str, tuple[int, Handler]] = {}
        self._stopping = threading.Event()
        self._backoff = Backoff(settings.backoff_min_s, settings.backoff_max_s)
        self._thread: threading.Thread | None = None
        self._paho = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id or f"facegate-{site}-{edge}",
            protocol=mqtt.MQTTv311,
            clean_session=settings.clean_session,
        )

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def connection_count(self) -> int:
        """Successful connects so far; a change means a new connection (resend what may be lost)."""
        return self._generation

    def start(self) -> None:
        self._configure()
        self._thread = threading.Thread(target=self._run, name=f"mqtt-{self.edge}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Publish the offline status, disconnect cleanly and join the network thread."""
        if self._connected:
            with contextlib.suppress(MqttError):
                self.publish(self.status_topic, self._status("offline"), retain=True).wait(timeout / 2)
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._changed:
            self._changed.notify_all()

    def wait_connected(self, timeout: float) -> bool:
        """True once connected; False after `timeout`, on stop() or after a refused login."""
        with self._changed:
            self._changed.wait_for(
                lambda: self._connected or self.fatal_error is not None or self._stopping.is_set(), timeout
            )
            return self._connected

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> Delivery:
        """Hand a message to the broker. Raises NotConnectedError while disconnected (nothing is queued),
        MqttError when paho's bounded queue is full."""
        generation = self._generation
        if not self._connected:
            raise NotConnectedError(f"not connected to {self.settings.host}:{self.settings.port}")
        info = self._paho.publish(topic, payload, qos=qos, retain=retain)
        if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN:
            raise NotConnectedError(f"publish to {topic} not sent: the connection just dropped")
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise MqttError(f"publish to {topic} not sent: {mqtt.error_string(info.rc)}")
        delivery = Delivery()
        with self._lock:
            self.counters.publishes += 1
            acked_early = self._early_acks.pop(info.mid, None)
            if qos == 0:
                delivery.resolve()
            elif acked_early is not None and time.monotonic() - acked_early < EARLY_ACK_S:
                self.counters.pubacks += 1
                delivery.resolve()
            elif not self._connected or generation != self._generation:
                delivery.resolve(NotConnectedError("the connection dropped during the publish"))
            else:
                self._deliveries[info.mid] = delivery
        return delivery

    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1) -> None:
        """Remember a subscription (sent again on every connect) and send it now if connected."""
        with self._lock:
            self._handlers[topic_filter] = (qos, handler)
            connected = self._connected
        if connected:
            self._paho.subscribe(topic_filter, qos)

    def _configure(self) -> None:
        settings, client = self.settings, self._paho
        if settings.username is not None:
            client.username_pw_set(settings.username, settings.password)
        if settings.tls or settings.ca_file or settings.cert_file:
            client.tls_set(ca_certs=settings.ca_file, certfile=settings.cert_file, keyfile=settings.key_file)
        client.max_inflight_messages_set(settings.max_inflight)
        client.max_queued_messages_set(settings.max_queued)  # a bound, not a buffer: see publish()
        client.connect_timeout = settings.connect_timeout_s
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message

    def _run(self) -> None:
        while not self._stopping.is_set() and self.fatal_error is None:
            try:
                self._connect_and_loop()
            except Exception:
                log.exception("mqtt_loop_failed", extra={"edge": self.edge})
                self.counters.loop_errors += 1
            if self.fatal_error is None and not self._stopping.is_set():
                self._stopping.wait(self._backoff.next())

    def _connect_and_loop(self) -> None:
        settings = self.settings
        self._paho.will_set(self.status_topic, self._status("offline"), qos=1, retain=True)
        try:
            self._paho.connect(settings.host, settings.port, keepalive=settings.keepalive_s)
        except OSError as err:
            log.warning(
                "mqtt_connect_failed", extra={"broker": f"{settings.host}:{settings.port}", "error": str(err)}
            )
            return
        while self._paho.loop(timeout=0.2) == MQTTErrorCode.MQTT_ERR_SUCCESS:
            if self._stopping.is_set():
                self._paho.disconnect()
                for _ in range(10):
                    if self._paho.loop(timeout=0.1) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                        break
                return

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

    def _on_connect(
        self, client: mqtt.Client, _u: object, _f: object, reason: ReasonCode, _p: object
    ) -> None:
        if reason.is_failure:
            self._refused(reason)
            return
        client.drop_out_messages()  # paho would resend them; the outbox does that, in order
        online = self._status("online")
        with self._changed:
            # retained online status first, then open publish() to others: a stop() right after the
            # connect cannot publish "offline" before it
            self._early_acks.clear()
            self._deliveries[client.publish(self.status_topic, online, qos=1, retain=True).mid] = Delivery()
            self._connected = True
            self._generation += 1
            self.counters.connects += 1
            self.counters.publishes += 1
            if self._generation > 1:
                self.counters.reconnects += 1
            subscriptions = [(name, qos) for name, (qos, _) in self._handlers.items()]
            self._changed.notify_all()
        self._backoff.reset()
        log.info("mqtt_connected", extra={"edge": self.edge, "connection": self._generation})
        for topic_filter, qos in subscriptions:
            client.subscribe(topic_filter, qos)

    def _refused(self, reason: ReasonCode) -> None:
        broker = f"{self.settings.host}:{self.settings.port}"
        if reason.value not in LOGIN_REFUSED:
            log.warning("mqtt_connect_refused", extra={"broker": broker, "reason": str(reason)})
            return
        self.fatal_error = LoginRefusedError(
            f"broker {broker} refused the login of user {self.settings.username!r} ({reason}); "
            "check mqtt.username and mqtt.password and the broker's password file; not retrying"
        )
        log.error("mqtt_login_refused", extra={"broker": broker, "error": str(self.fatal_error)})
        with self._changed:
            self._changed.notify_all()

    def _on_disconnect(self, _c: object, _u: object, _f: object, reason: ReasonCode, _p: object) -> None:
        with self._changed:
            was_connected, self._connected = self._connected, False
            failed, self._deliveries = self._deliveries, {}
            self._changed.notify_all()
        for delivery in failed.values():
            delivery.resolve(NotConnectedError(f"connection lost before the broker acknowledged ({reason})"))
        if was_connected:
            level = logging.INFO if self._stopping.is_set() else logging.WARNING
            fields = {"edge": self.edge, "reason": str(reason), "unacked": len(failed)}
            log.log(level, "mqtt_disconnected", extra=fields)

    def _on_publish(self, _c: object, _u: object, mid: int, reason: ReasonCode, _p: object) -> None:
        now = time.monotonic()
        with self._lock:
            delivery = self._deliveries.pop(mid, None)
            if delivery is not None:
                self.counters.pubacks += 1
            else:  # a PUBACK before publish() registered the mid, or a QoS 0 message was written
                self._early_acks[mid] = now
                if len(self._early_acks) > 256:
                    self._early_acks = {m: t for m, t in self._early_acks.items() if now - t < EARLY_ACK_S}
        if delivery is not None:
            delivery.resolve(
                MqttError(f"broker rejected the publish: {reason}") if reason.is_failure else None
            )

    def _on_message(self, _c: object, _u: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            handlers = [
                h for name, (_, h) in self._handlers.items() if mqtt.topic_matches_sub(name, message.topic)
            ]
        payload = bytes(message.payload)
        for handler in handlers:
            try:
                handler(message.topic, payload)
            except MessageError as err:
                self.counters.malformed += 1
                log.warning(
                    "mqtt_malformed_message",
                    extra={"topic": message.topic, "error": str(err)[:200], "payload": truncate(payload)},
                )
            except Exception:  # the top of message handling: one bad handler must not stop the client
                self.counters.handler_errors += 1
                log.exception(
                    "mqtt_handler_failed", extra={"topic": message.topic, "payload": truncate(payload)}
                )
