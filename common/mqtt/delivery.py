"""One publish and its acknowledgement; the publishes a client waits on, by message id."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass

from paho.mqtt.reasoncodes import ReasonCode

from common.mqtt.errors import MqttError, NotConnectedError

EARLY_ACK_S = 1.0  # an unclaimed PUBACK older than this belongs to no publish() (mids wrap at 65535)
MAX_EARLY_ACKS = 256


class Delivery:
    """Done when the broker acknowledged the publish (`acknowledged`) or it failed (`error`).

    `future` is a thread-safe `concurrent.futures.Future`: `asyncio.wrap_future` awaits it on a loop."""

    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future: Future[None] = Future()

    def wait(self, timeout: float | None = None) -> bool:
        """True once acknowledged; False on failure or when `timeout` passes first."""
        try:
            self.future.result(timeout)
        except (TimeoutError, MqttError):
            return False
        return True

    @property
    def acknowledged(self) -> bool:
        return self.future.done() and self.future.exception() is None

    @property
    def error(self) -> MqttError | None:
        if not self.future.done():
            return None
        error = self.future.exception()
        return error if isinstance(error, MqttError) else None

    def resolve(self, error: MqttError | None = None) -> None:
        """Complete once; later calls (a PUBACK racing a disconnect) change nothing."""
        with contextlib.suppress(InvalidStateError):  # already resolved by the other thread
            if error is None:
                self.future.set_result(None)
            else:
                self.future.set_exception(error)


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


class Deliveries:
    """The QoS 1 publishes waiting for their PUBACK, by message id, and PUBACKs that came before their
    `publish()` registered the id (early acknowledgements, kept for EARLY_ACK_S).

    Guarded by the client's lock, which also guards its connection state: a publish racing a disconnect
    is either registered before the disconnect and failed by `fail_all`, or sees the connection gone."""

    def __init__(self, lock: threading.Lock, counters: MqttCounters) -> None:
        self._lock, self._counters = lock, counters
        self._waiting: dict[int, Delivery] = {}
        self._early: dict[int, float] = {}  # mid -> when its PUBACK came before publish() returned

    def add(self, mid: int, qos: int, live: Callable[[], bool]) -> Delivery:
        """The Delivery of a publish paho numbered `mid`: done at once for QoS 0 or an early PUBACK,
        failed when `live()` (called under the lock) says its connection is gone, else waiting."""
        delivery = Delivery()
        with self._lock:
            self._counters.publishes += 1
            acked_early = self._early.pop(mid, None)
            if qos == 0:
                delivery.resolve()
            elif acked_early is not None and time.monotonic() - acked_early < EARLY_ACK_S:
                self._counters.pubacks += 1
                delivery.resolve()
            elif not live():
                delivery.resolve(NotConnectedError("the connection dropped during the publish"))
            else:
                self._waiting[mid] = delivery
        return delivery

    def expect(self, sent: Iterable[tuple[int, int]]) -> None:
        """Wait for the PUBACKs of publishes made on the network thread ((mid, qos) pairs); a new
        connection's first messages, made before anyone else may publish."""
        with self._lock:
            for mid, qos in sent:
                self._counters.publishes += 1
                if qos > 0:
                    self._waiting[mid] = Delivery()

    def forget_early(self) -> None:
        """A new connection: a PUBACK of the old one names no publish of this one."""
        with self._lock:
            self._early.clear()

    def acked(self, mid: int, reason: ReasonCode) -> None:
        """The broker's PUBACK for `mid` (paho's on_publish)."""
        now = time.monotonic()
        with self._lock:
            delivery = self._waiting.pop(mid, None)
            if delivery is not None:
                self._counters.pubacks += 1
            else:  # a PUBACK before publish() registered the mid, or a QoS 0 message was written
                self._early[mid] = now
                if len(self._early) > MAX_EARLY_ACKS:
                    self._early = {m: t for m, t in self._early.items() if now - t < EARLY_ACK_S}
        if delivery is not None:
            delivery.resolve(
                MqttError(f"broker rejected the publish: {reason}") if reason.is_failure else None
            )

    def fail_all(self, why: str) -> int:
        """Fail every waiting publish (the connection is gone); how many there were."""
        with self._lock:
            failed, self._waiting = self._waiting, {}
        for delivery in failed.values():
            delivery.resolve(NotConnectedError(f"{why}; retry later"))
        return len(failed)
