"""A client's session: its subscriptions, the QoS 1 messages in flight to it and those queued for it.

The session outlives its connection when the client asked for that (MQTT 5: clean start off and a Session
Expiry Interval; 3.1.1: clean session off). While the client is away, QoS 1 messages for it are queued
and QoS 0 ones dropped (Mosquitto's default). At most `max_inflight` (and the client's Receive Maximum)
are sent unacknowledged at once; the rest wait in the queue, bounded by `max_queued_messages` and
`max_queued_bytes` (beyond them new messages are dropped, as Mosquitto does). On a reconnect that resumes
the session, every unacknowledged message is sent again first, same packet id, DUP set.
Nothing is written to disk: a broker restart loses every session.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from demo.embedded_broker.config import Limits

log = logging.getLogger("demo.embedded_broker")
MAX_PACKET_IDS = 65_000  # cap on the in-flight window (packet ids are 16-bit)
NEVER = 0xFFFF_FFFF  # MQTT 5's Session Expiry Interval for "never"


@dataclass(frozen=True, slots=True)
class Message:
    """An application message as published; `properties`: the MQTT 5 ones passed on to receivers."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: tuple[tuple[int, Any], ...] = ()
    expires_at: float | None = None  # time.monotonic() after which it is not delivered

    @property
    def size(self) -> int:
        return len(self.topic) + len(self.payload)

    def remaining_s(self) -> int | None:
        """Seconds left of its Message Expiry Interval (None: no expiry; 0: expired)."""
        if self.expires_at is None:
            return None
        return max(0, int(self.expires_at - time.monotonic() + 0.999))


@dataclass(frozen=True, slots=True)
class Delivery:
    message: Message
    qos: int  # min(published QoS, subscribed QoS)
    retain: bool  # the RETAIN flag it is sent with


@dataclass(frozen=True, slots=True)
class Subscription:
    topic_filter: str
    qos: int
    group: str | None = None  # a $share group
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0


class Link(Protocol):
    """The connection a session is attached to."""

    def send_publish(self, packet_id: int, delivery: Delivery, dup: bool) -> bool:
        """Write it; False when it cannot go (expired, larger than the client accepts, QoS 0 backlog)."""
        ...

    def close(self, reason: int | None) -> None:
        """Close the connection (MQTT 5: with a DISCONNECT of `reason` first)."""
        ...


@dataclass(eq=False)
class Session:
    client_id: str
    username: str | None
    limits: Limits
    expiry_s: int = 0
    subscriptions: dict[str, Subscription] = field(default_factory=dict)  # by the filter as sent
    inflight: dict[int, Delivery] = field(default_factory=dict)
    queue: deque[Delivery] = field(default_factory=deque)
    queued_bytes: int = 0
    dropped: int = 0
    link: Link | None = None
    window: int = 1
    expiry_timer: asyncio.TimerHandle | None = None
    will_timer: asyncio.TimerHandle | None = None
    _last_id: int = 0

    def attach(self, link: Link, receive_maximum: int) -> None:
        """Send what was in flight again (DUP), then what waits in the queue."""
        self.link = link
        self.window = min(receive_maximum, self.limits.max_inflight or MAX_PACKET_IDS, MAX_PACKET_IDS)
        for timer in (self.expiry_timer, self.will_timer):
            if timer is not None:
                timer.cancel()
        self.expiry_timer = self.will_timer = None
        for packet_id, delivery in list(self.inflight.items()):
            if not link.send_publish(packet_id, delivery, dup=True):
                del self.inflight[packet_id]
        self.pump()

    def detach(self) -> None:
        self.link = None

    def deliver(self, delivery: Delivery) -> None:
        if delivery.qos == 0:
            if self.link is not None:
                self.link.send_publish(0, delivery, dup=False)
        elif self.link is not None and not self.queue and len(self.inflight) < self.window:
            self._send(delivery)
        else:
            self._enqueue(delivery)

    def acknowledged(self, packet_id: int) -> None:
        if self.inflight.pop(packet_id, None) is not None:
            self.pump()

    def pump(self) -> None:
        """Move queued messages into flight while the window allows."""
        while self.link is not None and self.queue and len(self.inflight) < self.window:
            delivery = self.queue.popleft()
            self.queued_bytes -= delivery.message.size
            self._send(delivery)

    def _send(self, delivery: Delivery) -> None:
        assert self.link is not None
        packet_id = self._next_id()
        if self.link.send_publish(packet_id, delivery, dup=False):
            self.inflight[packet_id] = delivery

    def _enqueue(self, delivery: Delivery) -> None:
        limits, size = self.limits, delivery.message.size
        full = limits.max_queued_messages and len(self.queue) >= limits.max_queued_messages
        if full or (limits.max_queued_bytes and self.queued_bytes + size > limits.max_queued_bytes):
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                log.warning(
                    "queue_full_message_dropped", extra={"client": self.client_id, "dropped": self.dropped}
                )
            return
        self.queue.append(delivery)
        self.queued_bytes += size

    def _next_id(self) -> int:
        for _ in range(65535):
            self._last_id = self._last_id % 65535 + 1
            if self._last_id not in self.inflight:
                return self._last_id
        raise RuntimeError("no free packet id")  # unreachable: the window is below 65535
