"""What the distributor needs of central's MQTT client (common.mqtt.aio.AsyncMqttClient has it)."""

from __future__ import annotations

from typing import Protocol


class Publisher(Protocol):
    """Publishes one message; returns after the broker's PUBACK for QoS 1, raises a FacegateError if not."""

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None: ...
