"""A received message, as handlers see it."""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec


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
"""Runs where the client's dispatch puts it: on the network thread (`MqttClient`) or on the asyncio loop
(`AsyncMqttClient`). It must not block for long."""
