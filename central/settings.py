"""Central's settings, read from environment variables inside `CentralSettings.from_env` (never at import).

Every variable, its default and what it does is listed in docs/central-api.md ("Settings").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from central.storage import FileSettings, S3Settings
from common.errors import ConfigError

DEFAULT_PORT = 8080


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
    presign_ttl_s: int = 300
    max_photo_bytes: int = 10 * 1024 * 1024
    max_photo_pixels: int = 40_000_000
    max_photos_per_request: int = 20
    max_zip_bytes: int = 200 * 1024 * 1024
    max_zip_entries: int = 10_000
    max_zip_unpacked_bytes: int = 2 * 1024 * 1024 * 1024
    enroll_workers: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    duplicate_threshold: float | None = None
    detector: str = "yunet-2023mar"
    recognizer: str = "sface-2021dec"
    key_cache_s: float = 30.0

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
            secret_key=reader.required("FACEGATE_SECRET_KEY", "it signs tokens and file URLs"),
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
            presign_ttl_s=reader.integer("FACEGATE_PRESIGN_TTL_S", defaults.presign_ttl_s, 1),
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
            detector=reader.text("FACEGATE_DETECTOR") or defaults.detector,
            recognizer=reader.text("FACEGATE_RECOGNIZER") or defaults.recognizer,
            key_cache_s=reader.number("FACEGATE_KEY_CACHE_S", defaults.key_cache_s),
        )


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
