"""Central's MQTT client (paho-mqtt 2, MQTT v5) behind an asyncio façade: `runtime.mqtt`.

- Persistent session: clean start off, a session expiry interval and a stable client id, so the broker
  keeps every QoS 1 message published while central is away and sends it on the next connect.
- Manual acknowledgement: paho runs with `manual_ack=True`. A subscription made with `manual_ack=True`
  leaves the PUBACK to its handler (`ack(message)`, called once the message's batch committed); the
  others are acknowledged as soon as they are handed to the event loop. `Receive Maximum` (CONNECT
  property) bounds how many unacknowledged messages the broker sends at once.
- Threads: paho's own network thread (`loop_start`) does all socket I/O. `publish`, `subscribe` and `ack`
  only queue a packet (paho's queue is a deque and wakes the thread through its socket pair), which is
  what paho supports from other threads. Handlers run on the asyncio loop: received messages go to an
  inbox (a deque) and one `call_soon_threadsafe` wakes the loop for all that arrived meanwhile, so a
  backlog costs one wakeup per burst, not one per message. The network thread never waits on the
  database.
- An ack is sent only on the connection that delivered the message: after a reconnect the broker sends
  unacknowledged messages again (same packet id), and an ack of the old copy could acknowledge a new
  message that reuses the id. The redelivered copy is stored idempotently and acknowledged instead.
- Subscriptions are remembered and sent again on every connect. A refused login (bad user name or
  password, not authorized) stops reconnecting with `fatal_error` set; other failures back off
  exponentially with jitter. Payloads are truncated in logs.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from central.errors import Unavailable
from central.mqtt.options import MqttOptions
from common.backoff import Backoff
from common.mqtt.payload import truncate
from common.mqtt.reasons import LOGIN_REFUSED

log = logging.getLogger("central.mqtt")
EARLY_ACK_S = 1.0  # an unclaimed PUBACK older than this belongs to no publish() (mids wrap at 65535)
PUBACK_HEADER = bytes((mqtt.PUBACK, 2))  # fixed header of a PUBACK with only a packet id
MAX_CACHED_TOPICS = 10_000  # topic -> matching subscriptions; cleared when full (forged topics)


class MqttUnavailable(Unavailable):  # name fixed by the agreed interface
    """Not connected to the broker, or the broker did not acknowledge a publish in time."""

    default_code = "broker_unavailable"


class Incoming(msgspec.Struct, frozen=True, gc=False):
    """One received message. `generation` is the connection it came on (acks go only to that one).
    (A msgspec Struct: built once per message on paho's thread, several times cheaper than a dataclass.)"""

    topic: str
    payload: bytes
    qos: int
    mid: int
    dup: bool
    retain: bool
    generation: int
    received: float = msgspec.field(default_factory=time.monotonic)


Handler = Callable[[Incoming], None]
"""Runs on the asyncio loop; must not block (hand the message to a queue or a task)."""


@dataclass(frozen=True, slots=True)
class _Subscription:
    filter: str  # what messages are matched against
    wire: str  # what is sent: the filter, or $share/<group>/<filter>
    qos: int
    manual_ack: bool
    handler: Handler


class CentralMqtt:
    """`start()` connects in paho's thread and keeps reconnecting until `stop()` or a refused login."""

    def __init__(self, options: MqttOptions) -> None:
        self.options = options
        self.fatal_error: MqttUnavailable | None = None
        self.connects = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._stopping = False
        self._generation = 0
        self._subscriptions: dict[str, _Subscription] = {}
        self._pending: dict[int, asyncio.Future[None]] = {}
        self._early_acks: dict[int, float] = {}
        self._unawaited: set[int] = set()  # mids of publish_nowait() still waiting for their PUBACK
        self._matches: dict[str, tuple[_Subscription, ...]] = {}  # topic -> its subscriptions
        self._inbox: deque[tuple[Handler, Incoming]] = deque()
        self._wakeup_pending = False
        self._backoff = Backoff(options.backoff_min_s, options.backoff_max_s)
        self._paho = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=options.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def generation(self) -> int:
        """Successful connects so far; the connection a message came on is its `generation`."""
        return self._generation

    async def start(self) -> None:
        """Configure and start connecting (returns at once; a broker that is down is retried)."""
        self._loop = asyncio.get_running_loop()
        self._configure()
        self._paho.connect_async(
            self.options.host,
            self.options.port,
            keepalive=self.options.keepalive_s,
            clean_start=False,
            properties=self._connect_properties(),
        )
        self._paho.loop_start()

    async def stop(self) -> None:
        """Disconnect (acks already queued are written first; unacknowledged messages stay with the
        broker for the next session) and join paho's thread."""
        self._stopping = True
        self._paho.disconnect()
        await asyncio.to_thread(self._paho.loop_stop)
        self._fail_pending("the client stopped")

    async def wait_connected(self, timeout: float) -> bool:
        """True once connected; False after `timeout` or after a refused login."""
        deadline = time.monotonic() + timeout
        while not self.connected and self.fatal_error is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return self.connected

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
        through `$share/<group>/` when a group is set, so replicas split the messages. `manual_ack`: the
        handler calls `ack(message)` itself (at most one such subscription may match a topic)."""
        group = self.options.shared_group
        wire = f"$share/{group}/{topic_filter}" if shared and group else topic_filter
        subscription = _Subscription(topic_filter, wire, qos, manual_ack, handler)
        with self._lock:
            self._subscriptions[topic_filter] = subscription
            self._matches = {}
        if self.connected:
            self._paho.subscribe(wire, qos)

    def ack(self, message: Incoming) -> bool:
        """Send the PUBACK of a QoS 1 message; False (nothing sent) when it came on an earlier
        connection: the broker sends it again and that copy is acknowledged instead."""
        if message.qos == 0:
            return True
        if message.generation != self._generation or not self.connected:
            return False
        return self._paho.ack(message.mid, message.qos) == MQTTErrorCode.MQTT_ERR_SUCCESS

    def ack_all(self, messages: Iterable[Incoming]) -> int:
        """`ack` every QoS 1 message of a committed batch with one write: their PUBACKs (4 bytes each:
        MQTT 5 lets a success PUBACK omit reason code and properties) are queued to paho as one packet,
        so a batch costs one wakeup of paho's thread, not one per message. Returns how many were sent;
        messages of an earlier connection are skipped (see `ack`)."""
        generation = self._generation
        mids = [m.mid for m in messages if m.qos == 1 and m.generation == generation]
        if not mids or not self.connected:
            return 0
        queue = getattr(self._paho, "_packet_queue", None)
        if queue is None:  # not paho 2's internals: one ack per message
            return sum(self._paho.ack(mid, 1) == MQTTErrorCode.MQTT_ERR_SUCCESS for mid in mids)
        packet = b"".join([PUBACK_HEADER + mid.to_bytes(2, "big") for mid in mids])
        rc = queue(mqtt.PUBACK, packet, 0, 0)
        return len(mids) if rc == MQTTErrorCode.MQTT_ERR_SUCCESS else 0

    def publish_nowait(self, topic: str, payload: bytes, *, qos: int = 1) -> None:
        """Queue a publish without waiting for its PUBACK (for messages whose loss the receiver repairs,
        such as receipts: an edge resends what has no receipt). Raises MqttUnavailable when not
        connected or when paho refuses it; a publish lost with the connection is not sent again."""
        if not self.connected:
            raise MqttUnavailable(f"not connected to the MQTT broker {self.options.broker}; retry later")
        info = self._paho.publish(topic, payload, qos=qos)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise MqttUnavailable(f"publish to {topic} not sent: {mqtt.error_string(info.rc)}")
        if qos > 0:
            with self._lock:
                if self._early_acks.pop(info.mid, None) is None:  # else its PUBACK came already
                    self._unawaited.add(info.mid)

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Publish; for QoS 1 return after the broker's PUBACK. Raises MqttUnavailable when not connected,
        when the connection drops first or after the publish timeout."""
        if not self.connected:
            raise MqttUnavailable(f"not connected to the MQTT broker {self.options.broker}; retry later")
        info = self._paho.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise MqttUnavailable(f"publish to {topic} not sent: {mqtt.error_string(info.rc)}")
        if qos == 0:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            acked = self._early_acks.pop(info.mid, None)
            if acked is not None and time.monotonic() - acked < EARLY_ACK_S:
                return
            self._pending[info.mid] = future
        try:
            await asyncio.wait_for(future, self.options.publish_timeout_s)
        except TimeoutError as err:
            raise MqttUnavailable(
                f"the broker did not acknowledge the publish to {topic} within "
                f"{self.options.publish_timeout_s:g} s; retry later"
            ) from err
        finally:
            with self._lock:
                self._pending.pop(info.mid, None)

    def _configure(self) -> None:
        options, client = self.options, self._paho
        if options.username is not None:
            client.username_pw_set(options.username, options.password)
        if options.tls:
            client.tls_set(
                ca_certs=options.ca_file,
                certfile=options.cert_file,
                keyfile=options.key_file,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        client.reconnect_delay_set(options.backoff_min_s, options.backoff_min_s)  # type: ignore[arg-type]
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message

    def _connect_properties(self) -> Properties:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self.options.session_expiry_s
        properties.ReceiveMaximum = self.options.receive_maximum
        return properties

    def _on_connect(
        self, client: mqtt.Client, _u: object, flags: mqtt.ConnectFlags, reason: ReasonCode, _p: object
    ) -> None:
        if reason.is_failure:
            self._refused(client, reason)
            return
        client.drop_out_messages()  # their publish() already failed; the callers decide what to resend
        with self._lock:
            self._early_acks.clear()
            self._unawaited.clear()
            self._generation += 1
            self.connects += 1
            subscriptions = list(self._subscriptions.values())
        self._connected.set()
        self._backoff.reset()
        log.info(
            "mqtt_connected",
            extra={
                "broker": self.options.broker,
                "client_id": self.options.client_id,
                "session_present": flags.session_present,
                "connection": self._generation,
            },
        )
        for subscription in subscriptions:
            client.subscribe(subscription.wire, subscription.qos)

    def _refused(self, client: mqtt.Client, reason: ReasonCode) -> None:
        if reason.value not in LOGIN_REFUSED:
            log.warning("mqtt_connect_refused", extra={"broker": self.options.broker, "reason": str(reason)})
            self._schedule_retry()
            return
        self.fatal_error = MqttUnavailable(
            f"broker {self.options.broker} refused the login of user {self.options.username!r} ({reason});"
            " check FACEGATE_MQTT_URL / FACEGATE_MQTT_USERNAME / FACEGATE_MQTT_PASSWORD and the broker's"
            " password file; not retrying"
        )
        log.error("mqtt_login_refused", extra={"broker": self.options.broker, "error": str(self.fatal_error)})
        client.disconnect()  # ends paho's reconnect loop

    def _on_connect_fail(self, _c: object, _u: object) -> None:
        log.warning("mqtt_connect_failed", extra={"broker": self.options.broker})
        self._schedule_retry()

    def _schedule_retry(self) -> None:
        delay = self._backoff.next()
        self._paho.reconnect_delay_set(delay, delay)  # type: ignore[arg-type]  # float s work; paho waits this long before its next attempt

    def _on_disconnect(self, _c: object, _u: object, _f: object, reason: ReasonCode, _p: object) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        self._fail_pending(f"connection lost before the broker acknowledged ({reason})")
        if not self._stopping:
            self._schedule_retry()
        if was_connected:
            level = logging.INFO if self._stopping else logging.WARNING
            log.log(level, "mqtt_disconnected", extra={"broker": self.options.broker, "reason": str(reason)})

    def _fail_pending(self, why: str) -> None:
        with self._lock:
            failed, self._pending = self._pending, {}
        for future in failed.values():
            self._resolve(future, MqttUnavailable(f"{why}; retry later"))

    def _on_publish(self, _c: object, _u: object, mid: int, reason: ReasonCode, _p: object) -> None:
        now = time.monotonic()
        with self._lock:
            future = self._pending.pop(mid, None)
            if future is None and mid in self._unawaited:
                self._unawaited.discard(mid)
                return
            if future is None:  # a PUBACK before publish() registered the mid, or a QoS 0 write
                self._early_acks[mid] = now
                if len(self._early_acks) > 256:
                    self._early_acks = {m: t for m, t in self._early_acks.items() if now - t < EARLY_ACK_S}
        if future is not None:
            error = (
                MqttUnavailable(f"the broker refused the publish ({reason})") if reason.is_failure else None
            )
            self._resolve(future, error)

    def _resolve(self, future: asyncio.Future[None], error: Exception | None) -> None:
        def settle() -> None:
            if future.done():
                return
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

        self._call_soon(settle)

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
        matching = self._matching(topic)
        if not matching:
            log.warning(
                "mqtt_unexpected_message",
                extra={"topic": topic, "payload": truncate(incoming.payload)},
            )
        manual = False
        for subscription in matching:
            self._inbox.append((subscription.handler, incoming))
            manual = manual or subscription.manual_ack
        if matching:
            self._wake()
        if incoming.qos > 0 and not manual:
            client.ack(incoming.mid, incoming.qos)  # nobody stores it: acknowledged once handed over

    def _matching(self, topic: str) -> tuple[_Subscription, ...]:
        """The subscriptions whose filter matches `topic`, cached per topic (the match is costly)."""
        found = self._matches.get(topic)
        if found is None:
            with self._lock:
                found = tuple(
                    s for s in self._subscriptions.values() if mqtt.topic_matches_sub(s.filter, topic)
                )
                if len(self._matches) >= MAX_CACHED_TOPICS:
                    self._matches = {}
                self._matches[topic] = found
        return found

    def _wake(self) -> None:
        """Schedule `_deliver` on the loop unless it is already scheduled (paho's thread)."""
        if not self._wakeup_pending:
            self._wakeup_pending = True
            self._call_soon(self._deliver)

    def _deliver(self) -> None:
        """Run the handlers of every message in the inbox (the loop). The flag is cleared before the
        inbox is emptied, so a message appended after the last pop always schedules a new call."""
        self._wakeup_pending = False
        inbox = self._inbox
        while inbox:
            handler, incoming = inbox.popleft()
            try:
                handler(incoming)
            except Exception:  # one handler's bug must not stop the others' delivery
                log.exception("mqtt_handler_failed", extra={"topic": incoming.topic})

    def _call_soon(self, fn: Callable[..., None], *args: object) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # the app is gone; an unacknowledged message comes back on the next session
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop closed meanwhile
            log.info("mqtt_loop_closed", extra={"broker": self.options.broker})
