"""One publish and its acknowledgement."""

from __future__ import annotations

import contextlib
from concurrent.futures import Future, InvalidStateError

from common.mqtt.errors import MqttError


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
