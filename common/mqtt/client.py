"""The MQTT client of both sides (paho-mqtt 2): acknowledged publishes, remembered subscriptions, backoff.

- Every QoS 1 publish returns a `Delivery` that completes on the broker's PUBACK (matched by message id;
  a PUBACK that arrives before `publish()` registered its id is an early acknowledgement, kept for a
  second) or fails when the connection drops first. While disconnected `publish` raises
  `NotConnectedError`: nothing is queued inside paho across connections (its leftovers are dropped on
  every connect), because the callers keep what must be resent (the edge's outbox, central's rows).
- One network thread (`start()`) connects, runs paho's loop and reconnects after a failure with
  exponential backoff and jitter (`common.backoff`).
- On every connect: the settings' `first` messages (the edge's retained online status) before anything
  else may be published, then every remembered subscription again.
- A refused login (bad user name or password, not authorized) is retried with a long backoff of its own
  (`refused_backoff_min_s`..`refused_backoff_max_s`, default 30 s .. 5 min: a broker whose password file
  is being fixed or reloaded lets the client in again without a restart, and a wrong password does not
  hammer the broker); `login_error` says why until a login succeeds, `counters.logins_refused` counts
  the refusals (central's and the edge's metrics and alerts). Other failures back off and retry.
- Received messages go to the handlers whose filter matches, through `dispatch`: on the network thread
  by default, or onto an asyncio loop (`common.mqtt.aio.AsyncMqttClient`). A handler raising
  `MessageError` is a malformed message: logged with a truncated payload and counted, never fatal.
- With `manual_ack`, a subscription made with `manual_ack=True` leaves the PUBACK to its owner
  (`ack(message)` once the message is safe); the others are acknowledged once handed over. An ack goes
  only to the connection that delivered the message: after a reconnect the broker sends unacknowledged
  messages again, and an old packet id may name a new message.

Threads: paho's socket I/O runs on the network thread only. `publish`, `subscribe` and `ack` from any thread
queue a packet, and paho's socket pair wakes the loop to write it (see `_run`).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from common.backoff import Backoff
from common.messages import MessageError
from common.mqtt.delivery import Delivery
from common.mqtt.errors import LoginRefusedError, MqttError, NotConnectedError
from common.mqtt.incoming import Handler, Incoming
from common.mqtt.payload import truncate
from common.mqtt.reasons import LOGIN_REFUSED
from common.mqtt.settings import MqttSettings, Outgoing
from common.mqtt.subscriptions import Subscription, Subscriptions

log = logging.getLogger("common.mqtt")
EARLY_ACK_S = 1.0  # an unclaimed PUBACK older than this belongs to no publish() (mids wrap at 65535)
MAX_EARLY_ACKS = 256
PUBACK_HEADER = bytes((mqtt.PUBACK, 2))  # fixed header of a PUBACK with only a packet id
LOOP_STEP_S = 0.2

Dispatch = Callable[[Handler, Incoming], None]
"""Hands one message to one handler (called on the network thread)."""


@dataclass(slots=True)
class MqttCounters:
    connects: int = 0
    reconnects: int = 0
    publishes: int = 0
    pubacks: int = 0
    malformed: int = 0
    handler_errors: int = 0
    loop_errors: int = 0
    logins_refused: int = 0


class MqttClient:
    """`start()` connects in a background thread and keeps reconnecting until `stop()`.

    `first`: the messages to publish on every connect before any other (read at each connect);
    `dispatch`: how a handler runs (default: at once, on the network thread, errors isolated);
    `log_fields`: fields added to every log line (e.g. the edge's id)."""

    def __init__(
        self,
        settings: MqttSettings,
        *,
        first: Callable[[], Sequence[Outgoing]] | None = None,
        dispatch: Dispatch | None = None,
        log_fields: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.counters = MqttCounters()
        self.login_error: LoginRefusedError | None = None
        """The last refused login; None once a login succeeds."""
        self._first = first
        self._dispatch = dispatch or self.run_handler
        self._fields = {"broker": settings.broker, "client_id": settings.client_id, **(log_fields or {})}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._connected = False
        self._generation = 0
        self._deliveries: dict[int, Delivery] = {}
        self._early_acks: dict[int, float] = {}  # mid -> when its PUBACK came before publish() returned
        self._subscriptions = Subscriptions()
        self._stopping = threading.Event()
        self._backoff = Backoff(settings.backoff_min_s, settings.backoff_max_s)
        self._refused_backoff = Backoff(settings.refused_backoff_min_s, settings.refused_backoff_max_s)
        self._thread: threading.Thread | None = None
        self._paho = self._make_paho(settings)

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def generation(self) -> int:
        """Successful connects so far; a change means a new connection (resend what may be lost)."""
        return self._generation

    def start(self) -> None:
        self._configure()
        name = f"mqtt-{self.settings.client_id}"[:64]
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Disconnect cleanly (packets already queued, such as acks, are written first; what the broker
        did not get an ack for stays in the session) and join the network thread."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._changed:
            self._changed.notify_all()
        self._fail_deliveries("the client stopped")

    def wait_connected(self, timeout: float) -> bool:
        """True once connected; False after `timeout`, on stop() or when a login is refused meanwhile."""
        with self._changed:
            refused = self.counters.logins_refused
            self._changed.wait_for(
                lambda: self._connected or self.counters.logins_refused > refused or self._stopping.is_set(),
                timeout,
            )
            return self._connected

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> Delivery:
        """Hand a message to the broker. Raises NotConnectedError while disconnected (nothing is queued),
        MqttError when paho's bounded queue is full."""
        generation = self._generation
        if not self._connected:
            raise NotConnectedError(f"not connected to the MQTT broker {self.settings.broker}; retry later")
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

    def subscribe(
        self,
        topic_filter: str,
        handler: Handler,
        *,
        qos: int = 1,
        shared: bool = False,
        manual_ack: bool = False,
    ) -> None:
        """Remember a subscription (sent again on every connect) and send it now if connected. `shared`:
        through `$share/<group>/` when the settings name a group, so several clients split the messages.
        `manual_ack`: the owner calls `ack(message)` (at most one such subscription may match a topic)."""
        if manual_ack and not self.settings.manual_ack:
            raise ValueError("manual_ack subscriptions need MqttSettings(manual_ack=True)")
        group = self.settings.shared_group
        wire = f"$share/{group}/{topic_filter}" if shared and group else topic_filter
        self._subscriptions.add(Subscription(topic_filter, wire, qos, manual_ack, handler))
        if self._connected:
            self._paho.subscribe(wire, qos)

    def ack(self, message: Incoming) -> bool:
        """Send the PUBACK of a QoS 1 message; False (nothing sent) when it came on an earlier
        connection: the broker sends it again and that copy is acknowledged instead."""
        if message.qos == 0:
            return True
        if message.generation != self._generation or not self._connected:
            return False
        return self._paho.ack(message.mid, message.qos) == MQTTErrorCode.MQTT_ERR_SUCCESS

    def ack_all(self, messages: Iterable[Incoming]) -> int:
        """`ack` every QoS 1 message of a batch with one write: their PUBACKs (4 bytes each: MQTT 5 lets a
        success PUBACK omit reason code and properties) are queued to paho as one packet, so a batch
        costs one wakeup of the network thread. Returns how many were sent (see `ack` for skipped ones)."""
        generation = self._generation
        mids = [m.mid for m in messages if m.qos == 1 and m.generation == generation]
        if not mids or not self._connected:
            return 0
        queue = getattr(self._paho, "_packet_queue", None)
        if queue is None or self.settings.protocol != "5":  # one ack per message
            return sum(self._paho.ack(mid, 1) == MQTTErrorCode.MQTT_ERR_SUCCESS for mid in mids)
        packet = b"".join([PUBACK_HEADER + mid.to_bytes(2, "big") for mid in mids])
        rc = queue(mqtt.PUBACK, packet, 0, 0)
        return len(mids) if rc == MQTTErrorCode.MQTT_ERR_SUCCESS else 0

    def run_handler(self, handler: Handler, message: Incoming) -> None:
        """Run one handler; its failure is logged and counted, and the next message is still delivered."""
        try:
            handler(message)
        except MessageError as err:
            self.counters.malformed += 1
            log.warning(
                "mqtt_malformed_message",
                extra={"topic": message.topic, "error": str(err)[:200], "payload": truncate(message.payload)},
            )
        except Exception:  # the top of message handling: one bad handler must not stop the client
            self.counters.handler_errors += 1
            log.exception(
                "mqtt_handler_failed", extra={"topic": message.topic, "payload": truncate(message.payload)}
            )

    # --- the network thread ---------------------------------------------------------------------------

    @staticmethod
    def _make_paho(settings: MqttSettings) -> mqtt.Client:
        if settings.protocol == "5":
            return mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=settings.client_id,
                protocol=mqtt.MQTTv5,
                manual_ack=settings.manual_ack,
            )
        return mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=mqtt.MQTTv311,
            clean_session=settings.clean_start,
            manual_ack=settings.manual_ack,
        )

    def _configure(self) -> None:
        settings, client = self.settings, self._paho
        if settings.username is not None:
            client.username_pw_set(settings.username, settings.password)
        if settings.uses_tls:
            client.tls_set(
                ca_certs=settings.ca_file,
                certfile=settings.cert_file,
                keyfile=settings.key_file,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        if settings.max_inflight is not None:
            client.max_inflight_messages_set(settings.max_inflight)
        if settings.max_queued is not None:
            client.max_queued_messages_set(settings.max_queued)  # a bound, not a buffer: see publish()
        client.connect_timeout = settings.connect_timeout_s
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message

    def _run(self) -> None:
        # Paho writes a queued packet at once from the publishing thread unless it believes its own
        # thread runs the loop; two threads writing one socket (TLS above all) interleave bytes and the
        # broker drops the connection for a protocol error. Naming this thread as paho's loop thread
        # makes publish/subscribe/ack from any thread only queue and wake the loop: this thread alone
        # writes.
        self._paho._thread = threading.current_thread()
        while not self._stopping.is_set():
            try:
                self._connect_and_loop()
            except Exception:  # the top of the network thread: log, count, reconnect
                log.exception("mqtt_loop_failed", extra=self._fields)
                self.counters.loop_errors += 1
            if not self._stopping.is_set():
                refused = self.login_error is not None
                self._stopping.wait(self._refused_backoff.next() if refused else self._backoff.next())

    def _connect_and_loop(self) -> None:
        settings = self.settings
        if settings.will is not None:
            will = settings.will
            self._paho.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        try:
            if settings.protocol == "5":
                self._paho.connect(
                    settings.host,
                    settings.port,
                    keepalive=settings.keepalive_s,
                    clean_start=settings.clean_start,
                    properties=self._connect_properties(),
                )
            else:
                self._paho.connect(settings.host, settings.port, keepalive=settings.keepalive_s)
        except OSError as err:
            log.warning("mqtt_connect_failed", extra={**self._fields, "error": str(err)})
            return
        while self._paho.loop(timeout=LOOP_STEP_S) == MQTTErrorCode.MQTT_ERR_SUCCESS:
            if self._stopping.is_set():
                self._paho.disconnect()
                for _ in range(10):
                    if self._paho.loop(timeout=0.1) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                        break
                return

    def _connect_properties(self) -> Properties:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if self.settings.session_expiry_s is not None:
            properties.SessionExpiryInterval = self.settings.session_expiry_s
        if self.settings.receive_maximum is not None:
            properties.ReceiveMaximum = max(self.settings.receive_maximum, 1)
        return properties

    def _on_connect(
        self, client: mqtt.Client, _u: object, flags: mqtt.ConnectFlags, reason: ReasonCode, _p: object
    ) -> None:
        if reason.is_failure:
            self._refused(reason)
            return
        client.drop_out_messages()  # their publish() already failed; the callers decide what to resend
        with self._lock:
            self._early_acks.clear()
        # The first messages go out before publish() opens to others (a stop() right after the connect
        # cannot publish, say, an offline status before the online one). Published outside the lock:
        # paho may call on_publish from inside publish(); no PUBACK is read meanwhile (this thread reads).
        first = list(self._first()) if self._first is not None else []
        sent = [(client.publish(m.topic, m.payload, qos=m.qos, retain=m.retain).mid, m.qos) for m in first]
        with self._changed:
            for mid, qos in sent:
                self.counters.publishes += 1
                if qos > 0:
                    self._deliveries[mid] = Delivery()
            self._connected = True
            self._generation += 1
            self.counters.connects += 1
            if self._generation > 1:
                self.counters.reconnects += 1
            subscriptions = self._subscriptions.all()
            self._changed.notify_all()
        self._backoff.reset()
        self._refused_backoff.reset()
        if self.login_error is not None:
            log.info(
                "mqtt_login_accepted", extra={**self._fields, "refused_before": self.login_error.refusals}
            )
            self.login_error = None
        log.info(
            "mqtt_connected",
            extra={**self._fields, "session_present": flags.session_present, "connection": self._generation},
        )
        for subscription in subscriptions:
            client.subscribe(subscription.wire, subscription.qos)

    def _refused(self, reason: ReasonCode) -> None:
        if reason.value not in LOGIN_REFUSED:
            log.warning("mqtt_connect_refused", extra={**self._fields, "reason": str(reason)})
            return
        self.counters.logins_refused += 1
        refusals = self.login_error.refusals + 1 if self.login_error is not None else 1
        self.login_error = LoginRefusedError(
            f"broker {self.settings.broker} refused the login of user {self.settings.username!r} ({reason}); "
            "check the MQTT user name and password and the broker's password file; retrying every "
            f"{self.settings.refused_backoff_min_s:g} to {self.settings.refused_backoff_max_s:g} s",
            refusals=refusals,
        )
        log.error("mqtt_login_refused", extra={**self._fields, "error": str(self.login_error)})
        with self._changed:
            self._changed.notify_all()

    def _on_disconnect(self, _c: object, _u: object, _f: object, reason: ReasonCode, _p: object) -> None:
        with self._changed:
            was_connected, self._connected = self._connected, False
            self._changed.notify_all()
        failed = self._fail_deliveries(f"connection lost before the broker acknowledged ({reason})")
        if was_connected:
            level = logging.INFO if self._stopping.is_set() else logging.WARNING
            log.log(
                level, "mqtt_disconnected", extra={**self._fields, "reason": str(reason), "unacked": failed}
            )

    def _fail_deliveries(self, why: str) -> int:
        with self._lock:
            failed, self._deliveries = self._deliveries, {}
        for delivery in failed.values():
            delivery.resolve(NotConnectedError(f"{why}; retry later"))
        return len(failed)

    def _on_publish(self, _c: object, _u: object, mid: int, reason: ReasonCode, _p: object) -> None:
        now = time.monotonic()
        with self._lock:
            delivery = self._deliveries.pop(mid, None)
            if delivery is not None:
                self.counters.pubacks += 1
            else:  # a PUBACK before publish() registered the mid, or a QoS 0 message was written
                self._early_acks[mid] = now
                if len(self._early_acks) > MAX_EARLY_ACKS:
                    self._early_acks = {m: t for m, t in self._early_acks.items() if now - t < EARLY_ACK_S}
        if delivery is not None:
            delivery.resolve(
                MqttError(f"broker rejected the publish: {reason}") if reason.is_failure else None
            )

    def _on_message(self, client: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        topic = message.topic  # a property that decodes the bytes on every access
        incoming = Incoming(
            topic,
            bytes(message.payload),
            message.qos,
            message.mid,
            bool(message.dup),
            bool(message.retain),
            self._generation,
        )
        matching = self._subscriptions.matching(topic)
        if not matching:
            log.warning(
                "mqtt_unexpected_message",
                extra={**self._fields, "topic": topic, "payload": truncate(incoming.payload)},
            )
        manual = False
        for subscription in matching:
            self._dispatch(subscription.handler, incoming)
            manual = manual or subscription.manual_ack
        if self.settings.manual_ack and incoming.qos > 0 and not manual:
            client.ack(incoming.mid, incoming.qos)  # nobody keeps it: acknowledged once handed over
