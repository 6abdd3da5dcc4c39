"""What the MQTT client raises."""

from __future__ import annotations

from common.errors import FacegateError


class MqttError(FacegateError):
    """A publish could not be handed to the broker, or the broker did not acknowledge it."""


class NotConnectedError(MqttError):
    """The client is not connected; the message was not sent and nothing keeps it."""


class LoginRefusedError(MqttError):
    """The broker refused the credentials; the client retries with a long backoff. `refusals`: in a row."""

    def __init__(self, message: str, *, refusals: int = 1) -> None:
        super().__init__(message)
        self.refusals = refusals


class PublishTimeoutError(MqttError):
    """The broker did not acknowledge a publish in time (it may still arrive: the caller decides)."""
