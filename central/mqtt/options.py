"""Where and how central connects to the broker: `mqtt_settings` reads FACEGATE_MQTT_*.

Central's client is the common one (`common.mqtt.aio.AsyncMqttClient`) with central's policy: MQTT 5,
a persistent session (clean start off, a session expiry, a stable client id: the login name, one login
per replica, since the broker binds client ids to logins) so the broker keeps every
QoS 1 message published while central is away, manual acknowledgement (ingest acknowledges a message only
after its batch committed), `Receive Maximum` bounding how many unacknowledged messages the broker sends
at once, and a shared-subscription group so replicas split the events.
"""

from __future__ import annotations

import socket
from urllib.parse import unquote, urlsplit

from central.settings import CentralSettings
from common.errors import ConfigError
from common.mqtt.settings import MqttSettings

SCHEMES = {"mqtt": (False, 1883), "tcp": (False, 1883), "mqtts": (True, 8883), "ssl": (True, 8883)}


def mqtt_settings(settings: CentralSettings) -> MqttSettings:
    """The client's settings from FACEGATE_MQTT_URL (`mqtt://[user[:password]@]host[:port]`, `mqtts://` for
    TLS) and the other FACEGATE_MQTT_* settings; user name and password settings win over the URL's."""
    url = settings.mqtt_url or ""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise ConfigError(f"FACEGATE_MQTT_URL={url!r}: expected mqtt://host[:port] or mqtts://host[:port]")
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
    return MqttSettings(
        host=parts.hostname,
        port=port,
        client_id=settings.mqtt_client_id or default_client_id(username),
        username=username,
        password=password,
        tls=tls,
        ca_file=settings.mqtt_ca_file,
        cert_file=settings.mqtt_cert_file,
        key_file=settings.mqtt_key_file,
        protocol="5",
        keepalive_s=settings.mqtt_keepalive_s,
        clean_start=False,
        session_expiry_s=settings.mqtt_session_expiry_s,
        receive_maximum=max(settings.mqtt_receive_maximum, 1),
        manual_ack=True,
        shared_group=group,
        backoff_min_s=settings.mqtt_backoff_min_s,
        backoff_max_s=settings.mqtt_backoff_max_s,
        refused_backoff_min_s=settings.mqtt_refused_backoff_min_s,
        refused_backoff_max_s=settings.mqtt_refused_backoff_max_s,
        publish_timeout_s=settings.mqtt_publish_timeout_s,
    )


def default_client_id(username: str | None) -> str:
    """The login name, which is what the broker makes the id anyway (`use_username_as_clientid`,
    central/broker/conf.py); without a login `facegate-central-<hostname>`. Stable across restarts:
    the broker keeps the session by it."""
    return username or f"facegate-central-{socket.gethostname()}"[:128]
