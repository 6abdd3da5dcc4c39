"""The MQTT client for asyncio code (central): `common.mqtt.client.MqttClient` with handlers on the loop.

Received messages go to an inbox (a deque) on the network thread, and one `call_soon_threadsafe` wakes
the loop for all that arrived meanwhile, so a backlog costs one wakeup per burst, not one per message.
The network thread never waits on the loop. `publish` awaits the broker's PUBACK (bounded by the
settings' `publish_timeout_s`); `publish_nowait` is for messages whose loss the receiver repairs.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable

from common.mqtt.client import MqttClient
from common.mqtt.errors import LoginRefusedError, PublishTimeoutError
from common.mqtt.incoming import Handler, Incoming
from common.mqtt.settings import MqttSettings

log = logging.getLogger("common.mqtt")


class AsyncMqttClient:
    """`await start()` connects in the background (a broker that is down is retried); handlers run on the
    loop that called `start()` and must not block (hand the message to a queue or a task)."""

    def __init__(self, settings: MqttSettings) -> None:
        self.settings = settings
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inbox: deque[tuple[Handler, Incoming]] = deque()
        self._wakeup_pending = False
        self._client = MqttClient(settings, dispatch=self._enqueue)

    @property
    def connected(self) -> bool:
        return self._client.connected

    @property
    def generation(self) -> int:
        """Successful connects so far; the connection a message came on is its `generation`."""
        return self._client.generation

    @property
    def connects(self) -> int:
        return self._client.counters.connects

    @property
    def login_error(self) -> LoginRefusedError | None:
        """The last refused login (retried with a long backoff); None once a login succeeds."""
        return self._client.login_error

    @property
    def logins_refused(self) -> int:
        return self._client.counters.logins_refused

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._client.start()

    async def stop(self) -> None:
        """Disconnect (acks already queued are written first; unacknowledged messages stay with the broker
        for the next session) and join the network thread."""
        await asyncio.to_thread(self._client.stop)

    async def wait_connected(self, timeout: float) -> bool:
        """True once connected; False after `timeout` or when a login is refused meanwhile."""
        return await asyncio.to_thread(self._client.wait_connected, timeout)

    def subscribe(
        self,
        topic_filter: str,
        handler: Handler,
        *,
        qos: int = 1,
        shared: bool = False,
        manual_ack: bool = False,
    ) -> None:
        """See `MqttClient.subscribe`; `handler` runs on the loop."""
        self._client.subscribe(topic_filter, handler, qos=qos, shared=shared, manual_ack=manual_ack)

    def ack(self, message: Incoming) -> bool:
        return self._client.ack(message)

    def ack_all(self, messages: Iterable[Incoming]) -> int:
        return self._client.ack_all(messages)

    def publish_nowait(self, topic: str, payload: bytes, *, qos: int = 1) -> None:
        """Queue a publish without waiting for its PUBACK (for messages whose loss the receiver repairs,
        such as receipts: an edge resends what has no receipt). Raises MqttError when not connected or
        when paho refuses it; a publish lost with the connection is not sent again."""
        self._client.publish(topic, payload, qos=qos)

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Publish; for QoS 1 return after the broker's PUBACK. Raises MqttError when not connected or when
        the connection drops first, PublishTimeoutError after the settings' publish timeout."""
        delivery = self._client.publish(topic, payload, qos=qos, retain=retain)
        timeout = self.settings.publish_timeout_s
        try:
            await asyncio.wait_for(asyncio.wrap_future(delivery.future), timeout)
        except TimeoutError as err:
            raise PublishTimeoutError(
                f"the broker did not acknowledge the publish to {topic} within {timeout:g} s; retry later"
            ) from err

    # --- from the network thread to the loop ---------------------------------------------------------

    def _enqueue(self, handler: Handler, message: Incoming) -> None:
        self._inbox.append((handler, message))
        if not self._wakeup_pending:
            self._wakeup_pending = True
            self._call_soon(self._deliver)

    def _deliver(self) -> None:
        """Run the handlers of every message in the inbox (on the loop). The flag is cleared before the
        inbox is emptied, so a message appended after the last pop always schedules a new call."""
        self._wakeup_pending = False
        inbox = self._inbox
        while inbox:
            handler, message = inbox.popleft()
            self._client.run_handler(handler, message)

    def _call_soon(self, fn: Callable[[], None]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # the app is gone; an unacknowledged message comes back on the next session
        try:
            loop.call_soon_threadsafe(fn)
        except RuntimeError:  # the loop closed meanwhile
            log.info("mqtt_loop_closed", extra={"broker": self.settings.broker})
