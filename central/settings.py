"""Central's settings, read from environment variables inside `CentralSettings.from_env` (never at import).

Every variable, its default and what it does is listed in docs/central-api.md ("Settings").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from central.storage import FileSettings, S3Settings
from common.errors import ConfigError

DEFAULT_PORT = 8080
MIN_SECRET_BYTES = 32
"""FACEGATE_SECRET_KEY's minimum: HS256 tokens need a key at least as long as the hash (RFC 7518 3.2)."""


@dataclass(frozen=True, slots=True)
class CentralSettings:
    """What `create_app` needs. Build it with `from_env(os.environ)` or directly in tests."""

    database_url: str
    secret_key: str
    storage: S3Settings | FileSettings
    redis_url: str | None = None
    mqtt_url: str | None = None
    models_dir: Path = field(default_factory=lambda: Path("~/.cache/facegate/models").expanduser())
    migrate_on_start: bool = True
    db_pool_min: int = 2
    db_pool_max: int = 10
    token_ttl_s: int = 900
    rate_limit_per_s: float = 20.0
    rate_limit_burst: int = 60
    # failed authentications before PBKDF2 runs (central/auth/authlimit.py)
    auth_fail_ip_per_s: float = 0.5
    auth_fail_ip_burst: int = 30
    auth_fail_key_per_s: float = 0.2
    auth_fail_key_burst: int = 10
    presign_ttl_s: int = 300
    max_body_bytes: int = 1024 * 1024  # every route but the photo and archive uploads
    max_photo_bytes: int = 10 * 1024 * 1024
    max_photo_pixels: int = 40_000_000
    max_photos_per_request: int = 20
    max_zip_bytes: int = 200 * 1024 * 1024
    max_zip_entries: int = 10_000
    max_zip_unpacked_bytes: int = 2 * 1024 * 1024 * 1024
    enroll_workers: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    duplicate_threshold: float | None = None
    cluster_threshold: float = 0.45  # central/clusters/assign.py DEFAULT_THRESHOLD (bench/clusters.py)
    negatives_per_person: int = 50
    detector: str = "yunet-2023mar"
    recognizer: str = "sface-2021dec"
    key_cache_s: float = 30.0
    # MQTT client and ingest (docs/central-ingest.md); used only when mqtt_url is set
    mqtt_client_id: str = ""  # "": facegate-central-<hostname>; each replica needs its own
    mqtt_username: str | None = None  # None: the URL's user info, if any
    mqtt_password: str | None = None
    mqtt_ca_file: str | None = None  # mqtts:// only; None: the system's CA certificates
    mqtt_cert_file: str | None = None  # client certificate (mqtts:// only)
    mqtt_key_file: str | None = None
    mqtt_shared_group: str = "central"  # "": plain subscriptions (one consumer)
    mqtt_session_expiry_s: int = 7 * 24 * 3600
    mqtt_keepalive_s: int = 30
    mqtt_receive_maximum: int = 1000  # unacknowledged QoS 1 messages the broker may send (>= batch)
    mqtt_publish_timeout_s: float = 10.0
    mqtt_backoff_min_s: float = 0.5
    mqtt_backoff_max_s: float = 30.0
    ingest_batch_size: int = 500
    ingest_flush_s: float = 0.2
    ingest_max_crop_bytes: int = 256 * 1024
    ingest_edge_cache_s: float = 5.0
    ingest_retry_max_s: float = 30.0
    ingest_stall_s: float = 60.0
    dead_letter_max_per_edge: int = 1000
    dead_letter_max_bytes_per_edge: int = 16 * 1024 * 1024
    dead_letter_retention_s: float = 7 * 86400.0
    mqtt_refused_backoff_min_s: float = 30.0
    mqtt_refused_backoff_max_s: float = 300.0
    # gallery distribution (docs/central-distribution.md); runs only when central has an MQTT client
    distribution_poll_s: float = 5.0  # poll for unpublished versions besides LISTEN/NOTIFY
    distribution_batch: int = 100  # versions published per gallery per pass
    snapshot_every_changes: int = 50  # a new snapshot after this many versions since the last one
    snapshot_every_s: float = 3600.0  # ... or when the last one is this old and versions followed it
    resync_check_s: float = 15.0  # how often edges' reported gallery versions are checked
    resync_grace_s: float = 60.0  # behind for longer than this: a resync command
    resync_min_interval_s: float = 300.0  # at most one round of resync commands per edge per interval
    # Fleet gauges and live events (docs/central-monitoring.md)
    fleet_refresh_s: float = 15.0  # how often each replica reads the edges table for the fleet gauges
    edge_offline_after_s: float = 90.0  # an edge not seen for this long counts offline (3 heartbeats)
    ws_queue_size: int = 1000  # events waiting per WebSocket client; more and it is dropped (1013)
    ws_ping_s: float = 20.0  # a {"type": "ping"} frame after this long without an event
    live_channel: str = "facegate:events"  # Redis pub/sub channel (distinct per deployment on one Redis)
    metrics_port: int = 0  # 0: /metrics on the main port; else only on this one (docs/security.md)
    # The console (docs/console.md)
    console_session_ttl_s: int = 8 * 3600  # a console session ends this long after sign-in
    console_secure_cookies: bool = False  # Secure cookies; also set whenever a request arrives over https
    # Notifications (docs/notifications.md)
    notify_poll_s: float = 0.5  # how often each replica looks for due deliveries
    notify_batch: int = 20  # deliveries one replica claims (FOR UPDATE SKIP LOCKED) per pass
    notify_retry_s: tuple[float, ...] = (5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0)  # waits before retries
    notify_max_age_s: float = 3600.0  # events older than this when ingested notify no one
    notify_link_ttl_s: int = 3600  # how long the crop link in a notification stays valid
    webhook_timeout_s: float = 5.0  # connect + send + response, each
    webhook_max_response_bytes: int = 64 * 1024  # read of a receiver's response, at most
    webhook_allow_nets: tuple[str, ...] = ()  # private/loopback/link-local networks webhooks may reach
    smtp_host: str | None = None  # None: e-mail deliveries fail ("SMTP not configured")
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "facegate@localhost"
    smtp_starttls: bool = False
    smtp_timeout_s: float = 10.0
    # Retention (docs/retention.md)
    retention_every_s: float = 3600.0  # how often a replica tries a retention run (one at a time)
    retention_batch: int = 5000  # rows per delete transaction outside whole-partition drops

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CentralSettings:
        """Read the FACEGATE_* variables; ConfigError names the variable that is missing or wrong."""
        reader = _Env(env)
        storage: S3Settings | FileSettings
        if reader.text("FACEGATE_S3_ENDPOINT"):
            storage = S3Settings.from_env(env)
        elif reader.text("FACEGATE_STORAGE_DIR"):
            storage = FileSettings.from_env(env)
        else:
            raise ConfigError(
                "object storage: set FACEGATE_S3_ENDPOINT (S3/MinIO) or FACEGATE_STORAGE_DIR (a folder)"
            )
        defaults = cls(database_url="", secret_key="", storage=storage)
        return cls(
            database_url=reader.required("FACEGATE_DATABASE_URL", "the PostgreSQL URL"),
            secret_key=check_secret_key(
                reader.required("FACEGATE_SECRET_KEY", "it signs tokens and file URLs")
            ),
            storage=storage,
            redis_url=reader.text("FACEGATE_REDIS_URL") or None,
            mqtt_url=reader.text("FACEGATE_MQTT_URL") or None,
            models_dir=Path(reader.text("FACEGATE_MODELS") or str(defaults.models_dir)).expanduser(),
            migrate_on_start=reader.flag("FACEGATE_MIGRATE_ON_START", defaults.migrate_on_start),
            db_pool_min=reader.integer("FACEGATE_DB_POOL_MIN", defaults.db_pool_min, 1),
            db_pool_max=reader.integer("FACEGATE_DB_POOL_MAX", defaults.db_pool_max, 1),
            token_ttl_s=reader.integer("FACEGATE_TOKEN_TTL_S", defaults.token_ttl_s, 1),
            rate_limit_per_s=reader.number("FACEGATE_RATE_LIMIT_PER_S", defaults.rate_limit_per_s),
            rate_limit_burst=reader.integer("FACEGATE_RATE_LIMIT_BURST", defaults.rate_limit_burst, 1),
            auth_fail_ip_per_s=reader.number("FACEGATE_AUTH_FAIL_IP_PER_S", defaults.auth_fail_ip_per_s),
            auth_fail_ip_burst=reader.integer("FACEGATE_AUTH_FAIL_IP_BURST", defaults.auth_fail_ip_burst, 1),
            auth_fail_key_per_s=reader.number("FACEGATE_AUTH_FAIL_KEY_PER_S", defaults.auth_fail_key_per_s),
            auth_fail_key_burst=reader.integer(
                "FACEGATE_AUTH_FAIL_KEY_BURST", defaults.auth_fail_key_burst, 1
            ),
            presign_ttl_s=reader.integer("FACEGATE_PRESIGN_TTL_S", defaults.presign_ttl_s, 1),
            max_body_bytes=reader.integer("FACEGATE_MAX_BODY_BYTES", defaults.max_body_bytes, 16 * 1024),
            max_photo_bytes=reader.integer("FACEGATE_MAX_PHOTO_BYTES", defaults.max_photo_bytes, 1024),
            max_photo_pixels=reader.integer("FACEGATE_MAX_PHOTO_PIXELS", defaults.max_photo_pixels, 256),
            max_photos_per_request=reader.integer(
                "FACEGATE_MAX_PHOTOS_PER_REQUEST", defaults.max_photos_per_request, 1
            ),
            max_zip_bytes=reader.integer("FACEGATE_MAX_ZIP_BYTES", defaults.max_zip_bytes, 1024),
            max_zip_entries=reader.integer("FACEGATE_MAX_ZIP_ENTRIES", defaults.max_zip_entries, 1),
            max_zip_unpacked_bytes=reader.integer(
                "FACEGATE_MAX_ZIP_UNPACKED_BYTES", defaults.max_zip_unpacked_bytes, 1024
            ),
            enroll_workers=reader.integer("FACEGATE_ENROLL_WORKERS", defaults.enroll_workers, 1),
            duplicate_threshold=reader.optional_number("FACEGATE_DUPLICATE_THRESHOLD"),
            cluster_threshold=reader.number("FACEGATE_CLUSTER_THRESHOLD", defaults.cluster_threshold),
            negatives_per_person=reader.integer(
                "FACEGATE_NEGATIVES_PER_PERSON", defaults.negatives_per_person, 1
            ),
            detector=reader.text("FACEGATE_DETECTOR") or defaults.detector,
            recognizer=reader.text("FACEGATE_RECOGNIZER") or defaults.recognizer,
            key_cache_s=reader.number("FACEGATE_KEY_CACHE_S", defaults.key_cache_s),
            **_mqtt_settings(reader, defaults),
            **_distribution_settings(reader, defaults),
            **_monitoring_settings(reader, defaults),
            **_console_settings(reader, defaults),
            **_notify_settings(reader, defaults),
        )


def check_secret_key(secret: str) -> str:
    """`secret` when it is at least MIN_SECRET_BYTES bytes (UTF-8); ConfigError saying how to make one."""
    size = len(secret.encode())
    if size < MIN_SECRET_BYTES:
        raise ConfigError(
            f"FACEGATE_SECRET_KEY is {size} bytes; it must be at least {MIN_SECRET_BYTES} (it signs tokens "
            "with HS256). Generate one: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    return secret


def upload_body_bytes(settings: CentralSettings) -> int:
    """The body limit of POST /people/{id}/photos: every photo of one request plus 1 MiB of form."""
    return settings.max_photo_bytes * settings.max_photos_per_request + 1024 * 1024


def _mqtt_settings(reader: _Env, defaults: CentralSettings) -> dict[str, Any]:
    """The FACEGATE_MQTT_* and FACEGATE_INGEST_* fields (docs/central-ingest.md)."""
    group = reader.env.get("FACEGATE_MQTT_SHARED_GROUP")  # set but empty: no shared subscription
    return {
        "mqtt_client_id": reader.text("FACEGATE_MQTT_CLIENT_ID"),
        "mqtt_username": reader.text("FACEGATE_MQTT_USERNAME") or None,
        "mqtt_password": reader.text("FACEGATE_MQTT_PASSWORD") or None,
        "mqtt_ca_file": reader.text("FACEGATE_MQTT_CA_FILE") or None,
        "mqtt_cert_file": reader.text("FACEGATE_MQTT_CERT_FILE") or None,
        "mqtt_key_file": reader.text("FACEGATE_MQTT_KEY_FILE") or None,
        "mqtt_shared_group": defaults.mqtt_shared_group if group is None else group.strip(),
        "mqtt_session_expiry_s": reader.integer(
            "FACEGATE_MQTT_SESSION_EXPIRY_S", defaults.mqtt_session_expiry_s, 0
        ),
        "mqtt_keepalive_s": reader.integer("FACEGATE_MQTT_KEEPALIVE_S", defaults.mqtt_keepalive_s, 5),
        "mqtt_receive_maximum": reader.integer(
            "FACEGATE_MQTT_RECEIVE_MAXIMUM", defaults.mqtt_receive_maximum, 1
        ),
        "mqtt_publish_timeout_s": reader.number(
            "FACEGATE_MQTT_PUBLISH_TIMEOUT_S", defaults.mqtt_publish_timeout_s
        ),
        "mqtt_backoff_min_s": reader.number("FACEGATE_MQTT_BACKOFF_MIN_S", defaults.mqtt_backoff_min_s),
        "mqtt_backoff_max_s": reader.number("FACEGATE_MQTT_BACKOFF_MAX_S", defaults.mqtt_backoff_max_s),
        "ingest_batch_size": reader.integer("FACEGATE_INGEST_BATCH_SIZE", defaults.ingest_batch_size, 1),
        "ingest_flush_s": reader.number("FACEGATE_INGEST_FLUSH_S", defaults.ingest_flush_s),
        "ingest_max_crop_bytes": reader.integer(
            "FACEGATE_INGEST_MAX_CROP_BYTES", defaults.ingest_max_crop_bytes, 0
        ),
        "ingest_edge_cache_s": reader.number("FACEGATE_INGEST_EDGE_CACHE_S", defaults.ingest_edge_cache_s),
        "ingest_retry_max_s": reader.number("FACEGATE_INGEST_RETRY_MAX_S", defaults.ingest_retry_max_s),
        "ingest_stall_s": reader.number("FACEGATE_INGEST_STALL_S", defaults.ingest_stall_s),
        "dead_letter_max_per_edge": reader.integer(
            "FACEGATE_DEAD_LETTER_MAX_PER_EDGE", defaults.dead_letter_max_per_edge, 1
        ),
        "dead_letter_max_bytes_per_edge": reader.integer(
            "FACEGATE_DEAD_LETTER_MAX_BYTES_PER_EDGE", defaults.dead_letter_max_bytes_per_edge, 65536
        ),
        "dead_letter_retention_s": reader.number(
            "FACEGATE_DEAD_LETTER_RETENTION_S", defaults.dead_letter_retention_s
        ),
        "mqtt_refused_backoff_min_s": reader.number(
            "FACEGATE_MQTT_REFUSED_BACKOFF_MIN_S", defaults.mqtt_refused_backoff_min_s
        ),
        "mqtt_refused_backoff_max_s": reader.number(
            "FACEGATE_MQTT_REFUSED_BACKOFF_MAX_S", defaults.mqtt_refused_backoff_max_s
        ),
    }


def _monitoring_settings(reader: _Env, defaults: CentralSettings) -> dict[str, Any]:
    """The fleet-gauge and live-event fields (docs/central-monitoring.md)."""
    return {
        "fleet_refresh_s": reader.number("FACEGATE_FLEET_REFRESH_S", defaults.fleet_refresh_s),
        "edge_offline_after_s": reader.number("FACEGATE_EDGE_OFFLINE_AFTER_S", defaults.edge_offline_after_s),
        "ws_queue_size": reader.integer("FACEGATE_WS_QUEUE_SIZE", defaults.ws_queue_size, 1),
        "ws_ping_s": reader.number("FACEGATE_WS_PING_S", defaults.ws_ping_s),
        "live_channel": reader.text("FACEGATE_LIVE_CHANNEL") or defaults.live_channel,
        "metrics_port": reader.integer("FACEGATE_METRICS_PORT", defaults.metrics_port, 0),
    }


def _console_settings(reader: _Env, defaults: CentralSettings) -> dict[str, Any]:
    """The console's fields (docs/console.md)."""
    return {
        "console_session_ttl_s": reader.integer(
            "FACEGATE_CONSOLE_SESSION_TTL_S", defaults.console_session_ttl_s, 60
        ),
        "console_secure_cookies": reader.flag(
            "FACEGATE_CONSOLE_SECURE_COOKIES", defaults.console_secure_cookies
        ),
    }


def _distribution_settings(reader: _Env, defaults: CentralSettings) -> dict[str, Any]:
    """The gallery distribution fields (docs/central-distribution.md)."""
    return {
        "distribution_poll_s": reader.number("FACEGATE_DISTRIBUTION_POLL_S", defaults.distribution_poll_s),
        "distribution_batch": reader.integer("FACEGATE_DISTRIBUTION_BATCH", defaults.distribution_batch, 1),
        "snapshot_every_changes": reader.integer(
            "FACEGATE_SNAPSHOT_EVERY_CHANGES", defaults.snapshot_every_changes, 1
        ),
        "snapshot_every_s": reader.number("FACEGATE_SNAPSHOT_EVERY_S", defaults.snapshot_every_s),
        "resync_check_s": reader.number("FACEGATE_RESYNC_CHECK_S", defaults.resync_check_s),
        "resync_grace_s": reader.number("FACEGATE_RESYNC_GRACE_S", defaults.resync_grace_s),
        "resync_min_interval_s": reader.number(
            "FACEGATE_RESYNC_MIN_INTERVAL_S", defaults.resync_min_interval_s
        ),
    }


def _notify_settings(reader: _Env, defaults: CentralSettings) -> dict[str, Any]:
    return {
        "notify_poll_s": reader.number("FACEGATE_NOTIFY_POLL_S", defaults.notify_poll_s),
        "notify_batch": reader.integer("FACEGATE_NOTIFY_BATCH", defaults.notify_batch, 1),
        "notify_retry_s": reader.numbers("FACEGATE_NOTIFY_RETRY_S", defaults.notify_retry_s),
        "notify_max_age_s": reader.number("FACEGATE_NOTIFY_MAX_AGE_S", defaults.notify_max_age_s),
        "notify_link_ttl_s": reader.integer("FACEGATE_NOTIFY_LINK_TTL_S", defaults.notify_link_ttl_s, 60),
        "webhook_timeout_s": reader.number("FACEGATE_WEBHOOK_TIMEOUT_S", defaults.webhook_timeout_s),
        "webhook_max_response_bytes": reader.integer(
            "FACEGATE_WEBHOOK_MAX_RESPONSE_BYTES", defaults.webhook_max_response_bytes, 0
        ),
        "webhook_allow_nets": tuple(
            n.strip() for n in reader.text("FACEGATE_WEBHOOK_ALLOW_NETS").split(",") if n.strip()
        ),
        "smtp_host": reader.text("FACEGATE_SMTP_HOST") or None,
        "smtp_port": reader.integer("FACEGATE_SMTP_PORT", defaults.smtp_port, 1),
        "smtp_username": reader.text("FACEGATE_SMTP_USERNAME") or None,
        "smtp_password": reader.text("FACEGATE_SMTP_PASSWORD") or None,
        "smtp_from": reader.text("FACEGATE_SMTP_FROM") or defaults.smtp_from,
        "smtp_starttls": reader.flag("FACEGATE_SMTP_STARTTLS", defaults.smtp_starttls),
        "smtp_timeout_s": reader.number("FACEGATE_SMTP_TIMEOUT_S", defaults.smtp_timeout_s),
        "retention_every_s": reader.number("FACEGATE_RETENTION_EVERY_S", defaults.retention_every_s),
        "retention_batch": reader.integer("FACEGATE_RETENTION_BATCH", defaults.retention_batch, 1),
    }


class _Env:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str) -> str:
        return self.env.get(name, "").strip()

    def required(self, name: str, why: str) -> str:
        value = self.text(name)
        if not value:
            raise ConfigError(f"{name} is not set ({why}); see docs/central-api.md")
        return value

    def integer(self, name: str, default: int, minimum: int) -> int:
        raw = self.text(name)
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError as err:
            raise ConfigError(f"{name}={raw!r}: expected a whole number") from err
        if value < minimum:
            raise ConfigError(f"{name}={value}: must be at least {minimum}")
        return value

    def number(self, name: str, default: float) -> float:
        value = self.optional_number(name)
        return default if value is None else value

    def numbers(self, name: str, default: tuple[float, ...]) -> tuple[float, ...]:
        """A comma-separated list of positive numbers (at most 20)."""
        raw = self.text(name)
        if not raw:
            return default
        try:
            values = tuple(float(v) for v in raw.split(","))
        except ValueError as err:
            raise ConfigError(f"{name}={raw!r}: expected numbers separated by commas") from err
        if not 0 < len(values) <= 20 or not all(0 < v < float("inf") for v in values):
            raise ConfigError(f"{name}={raw!r}: 1 to 20 positive finite numbers")
        return values

    def optional_number(self, name: str) -> float | None:
        raw = self.text(name)
        if not raw:
            return None
        try:
            value = float(raw)
        except ValueError as err:
            raise ConfigError(f"{name}={raw!r}: expected a number") from err
        if not value > 0 or value == float("inf"):
            raise ConfigError(f"{name}={raw!r}: must be a positive finite number")
        return value

    def flag(self, name: str, default: bool) -> bool:
        raw = self.text(name).lower()
        if not raw:
            return default
        if raw in {"1", "true", "yes", "on"}:
            return True
        if raw in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{name}={raw!r}: expected true or false")
