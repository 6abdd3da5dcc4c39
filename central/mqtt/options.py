"""Where and how central connects to the broker: `MqttOptions.from_settings` reads FACEGATE_MQTT_*."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from central.settings import CentralSettings
from common.errors import ConfigError

SCHEMES = {"mqtt": (False, 1883), "tcp": (False, 1883), "mqtts": (True, 8883), "ssl": (True, 8883)}


@dataclass(frozen=True, slots=True)
class MqttOptions:
    host: str
    port: int = 1883
    client_id: str = "facegate-central"
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    shared_group: str = "central"
    session_expiry_s: int = 7 * 24 * 3600
    keepalive_s: int = 30
    receive_maximum: int = 1000
    publish_timeout_s: float = 10.0
    backoff_min_s: float = 0.5
    backoff_max_s: float = 30.0

    @property
    def broker(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    @classmethod
    def from_settings(cls, settings: CentralSettings) -> MqttOptions:
        """Options from FACEGATE_MQTT_URL (`mqtt://[user[:password]@]host[:port]`, `mqtts://` for TLS)
        and the other FACEGATE_MQTT_* settings; user name and password settings win over the URL's."""
        url = settings.mqtt_url or ""
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES or not parts.hostname:
            raise ConfigError(
                f"FACEGATE_MQTT_URL={url!r}: expected mqtt://host[:port] or mqtts://host[:port]"
            )
        tls, default_port = SCHEMES[parts.scheme]
        try:
            port = parts.port or default_port
        except ValueError as err:
            raise ConfigError(f"FACEGATE_MQTT_URL={url!r}: the port is not a number") from err
        username = settings.mqtt_username or (unquote(parts.username) if parts.username else None)
        password = settings.mqtt_password or (unquote(parts.password) if parts.password else None)
        group = settings.mqtt_shared_group
        if group and ("/" in group or "+" in group or "#" in group):
            raise ConfigError(f"FACEGATE_MQTT_SHARED_GROUP={group!r}: no '/', '+' or '#'")
        return cls(
            host=parts.hostname,
            port=port,
            client_id=settings.mqtt_client_id or default_client_id(),
            username=username,
            password=password,
            tls=tls,
            ca_file=settings.mqtt_ca_file,
            cert_file=settings.mqtt_cert_file,
            key_file=settings.mqtt_key_file,
            shared_group=group,
            session_expiry_s=settings.mqtt_session_expiry_s,
            keepalive_s=settings.mqtt_keepalive_s,
            receive_maximum=max(settings.mqtt_receive_maximum, 1),
            publish_timeout_s=settings.mqtt_publish_timeout_s,
            backoff_min_s=settings.mqtt_backoff_min_s,
            backoff_max_s=settings.mqtt_backoff_max_s,
        )


def default_client_id() -> str:
    """`facegate-central-<hostname>`: stable across restarts (the broker keeps the session by it)."""
    return f"facegate-central-{socket.gethostname()}"[:128]
