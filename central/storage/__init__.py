"""Central's object storage: enrollment photos, face crops, gallery snapshots, model artifacts.

`ObjectStore` is the interface; `S3Store` (MinIO/S3) and `FileStore` (a local folder) implement it.
`open_store(env)` picks one from the environment. See docs/central-storage.md.
"""

from __future__ import annotations

from collections.abc import Mapping

from central.storage.filesystem import FileSettings, FileStore
from central.storage.keys import (
    crop_key,
    crops_day_prefix,
    model_key,
    person_photos_prefix,
    photo_key,
    snapshot_key,
    validate_key,
    validate_prefix,
)
from central.storage.objects import (
    InvalidKeyError,
    ObjectNotFound,
    ObjectStore,
    StorageError,
    StorageUnavailable,
    StoredObject,
)
from central.storage.s3 import S3Settings, S3Store
from central.storage.signing import verify_signed
from common.errors import ConfigError


def open_store(env: Mapping[str, str]) -> ObjectStore:
    """S3Store when FACEGATE_S3_ENDPOINT is set, else FileStore when FACEGATE_STORAGE_DIR is set.
    No I/O: call `ensure_buckets()` on the result at start-up."""
    if env.get("FACEGATE_S3_ENDPOINT", "").strip():
        return S3Store(S3Settings.from_env(env))
    if env.get("FACEGATE_STORAGE_DIR", "").strip():
        return FileStore(FileSettings.from_env(env))
    raise ConfigError(
        "object storage: set FACEGATE_S3_ENDPOINT (S3/MinIO) or FACEGATE_STORAGE_DIR (a folder)"
    )


__all__ = [
    "FileSettings",
    "FileStore",
    "InvalidKeyError",
    "ObjectNotFound",
    "ObjectStore",
    "S3Settings",
    "S3Store",
    "StorageError",
    "StorageUnavailable",
    "StoredObject",
    "crop_key",
    "crops_day_prefix",
    "model_key",
    "open_store",
    "person_photos_prefix",
    "photo_key",
    "snapshot_key",
    "validate_key",
    "validate_prefix",
    "verify_signed",
]
