"""The part of mosquitto.conf the embedded broker reads (the file `facegate central broker-config` writes).

Read: `listener PORT [ADDRESS]` (each starts a listener; `cafile`, `certfile`, `keyfile`, `tls_version`
after it belong to it; without `certfile` and `keyfile` it is plain TCP), `password_file`, `acl_file`,
`allow_anonymous`, `use_username_as_clientid` (a session's id is its login, as in Mosquitto: a client can
take over only its own login's session), `max_inflight_messages`, `max_queued_messages`,
`max_queued_bytes`, `max_packet_size`, `persistent_client_expiration` and `pid_file`.
Accepted and ignored: persistence (the embedded broker keeps everything in memory), logging, `user` and
`per_listener_settings`. Any other option is ignored with a warning in the log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from common.errors import ConfigError

log = logging.getLogger("demo.embedded_broker")
IGNORED = frozenset(
    {"persistence", "persistence_location", "persistence_file", "autosave_interval", "autosave_on_changes",
     "per_listener_settings", "user", "log_dest", "log_type", "log_timestamp", "log_timestamp_format",
     "connection_messages"}
)  # fmt: skip
UNITS = {"s": 1, "h": 3600, "d": 86400, "w": 7 * 86400, "m": 30 * 86400, "y": 365 * 86400}
TLS_VERSIONS = ("tlsv1.2", "tlsv1.3")


@dataclass(frozen=True, slots=True)
class Listener:
    port: int
    address: str = ""  # empty: every interface
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    tls_version: str = "tlsv1.2"  # the lowest version accepted

    @property
    def tls(self) -> bool:
        return self.certfile is not None or self.keyfile is not None


@dataclass(frozen=True, slots=True)
class Limits:
    """Per client: QoS 1 messages in flight to it, and queued beyond those (0 bytes: no byte limit)."""

    max_inflight: int = 20
    max_queued_messages: int = 1000
    max_queued_bytes: int = 0


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    listeners: tuple[Listener, ...]
    password_file: Path | None = None
    acl_file: Path | None = None
    allow_anonymous: bool = False
    use_username_as_clientid: bool = False
    limits: Limits = field(default_factory=Limits)
    max_packet_size: int = 0  # 0: MQTT's own limit
    persistent_client_expiration_s: int | None = None  # 3.1.1 clients without clean session; None: never
    pid_file: Path | None = None


def load_config(path: Path) -> BrokerConfig:
    """Parse `path`; ConfigError naming the line for what the embedded broker cannot run with."""
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read broker configuration {path}: {err.strerror}") from err
    return parse_config(text, str(path))


def parse_config(text: str, name: str = "mosquitto.conf") -> BrokerConfig:
    config = BrokerConfig(listeners=())
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        try:
            config = _apply(config, key, value.strip())
        except (ValueError, IndexError) as err:
            raise ConfigError(f"{name} line {number} ({line!r}): {err}") from err
    if not config.listeners:
        raise ConfigError(f"{name} has no `listener` line: the embedded broker needs one")
    return config


def _apply(config: BrokerConfig, key: str, value: str) -> BrokerConfig:
    if key == "listener":
        port, _, address = value.partition(" ")
        return replace(config, listeners=(*config.listeners, Listener(_port(port), address.strip())))
    if key in ("cafile", "certfile", "keyfile", "tls_version"):
        return _listener_option(config, key, value)
    if key == "password_file":
        return replace(config, password_file=Path(value))
    if key == "acl_file":
        return replace(config, acl_file=Path(value))
    if key == "pid_file":
        return replace(config, pid_file=Path(value))
    if key == "allow_anonymous":
        return replace(config, allow_anonymous=_bool(value))
    if key == "use_username_as_clientid":
        return replace(config, use_username_as_clientid=_bool(value))
    if key == "max_packet_size":
        return replace(config, max_packet_size=_count(value))
    if key == "persistent_client_expiration":
        return replace(config, persistent_client_expiration_s=_duration(value))
    limits = {"max_inflight_messages": "max_inflight", "max_queued_messages": "max_queued_messages",
              "max_queued_bytes": "max_queued_bytes"}  # fmt: skip
    if key in limits:
        return replace(config, limits=replace(config.limits, **{limits[key]: _count(value)}))
    if key not in IGNORED:
        log.warning("conf_option_ignored", extra={"option": key})
    return config


def _listener_option(config: BrokerConfig, key: str, value: str) -> BrokerConfig:
    if not config.listeners:
        raise ValueError(f"`{key}` before any `listener` line")
    if key == "tls_version" and value not in TLS_VERSIONS:
        raise ValueError(f"tls_version must be one of {', '.join(TLS_VERSIONS)}")
    *others, last = config.listeners
    if key == "cafile":
        last = replace(last, cafile=value)
    elif key == "certfile":
        last = replace(last, certfile=value)
    elif key == "keyfile":
        last = replace(last, keyfile=value)
    else:
        last = replace(last, tls_version=value)
    return replace(config, listeners=(*others, last))


def _port(text: str) -> int:
    port = int(text)
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is not in 1-65535")
    return port


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _bool(text: str) -> bool:
    if text not in ("true", "false"):
        raise ValueError("expected true or false")
    return text == "true"


def _duration(text: str) -> int:
    """Mosquitto's `<number><h|d|w|m|y>` (and plain seconds)."""
    if text[-1:] in UNITS:
        return int(text[:-1]) * UNITS[text[-1]]
    return int(text)
