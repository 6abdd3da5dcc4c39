"""Copying a finished backup to another S3 bucket, under `backups/<backup name>/<file>`.

Settings come from FACEGATE_OFFSITE_S3_ENDPOINT, FACEGATE_OFFSITE_S3_ACCESS_KEY,
FACEGATE_OFFSITE_S3_SECRET_KEY and FACEGATE_OFFSITE_S3_REGION (same forms as the FACEGATE_S3_* ones);
the bucket is `--offsite-bucket` (or FACEGATE_OFFSITE_S3_BUCKET).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from central.backup.manifest import MANIFEST, Manifest
from central.storage import S3Settings, S3Store
from common.errors import ConfigError

PREFIX = "backups"
_ENV = ("ENDPOINT", "ACCESS_KEY", "SECRET_KEY", "REGION", "BUCKET")


def offsite_settings(env: Mapping[str, str], bucket: str | None, endpoint: str | None) -> S3Settings | None:
    """The off-site bucket's settings, or None when no off-site bucket is configured."""
    mapped = {f"FACEGATE_S3_{n}": env.get(f"FACEGATE_OFFSITE_S3_{n}", "") for n in _ENV}
    if bucket:
        mapped["FACEGATE_S3_BUCKET"] = bucket
    if endpoint:
        mapped["FACEGATE_S3_ENDPOINT"] = endpoint
    if not mapped["FACEGATE_S3_BUCKET"].strip():
        return None
    mapped = {k: v for k, v in mapped.items() if v.strip()}
    try:
        return S3Settings.from_env(mapped)
    except ConfigError as err:
        raise ConfigError(f"off-site bucket: {err} (set the FACEGATE_OFFSITE_S3_* variable)") from err


def copy_offsite(settings: S3Settings, folder: Path, manifest: Manifest) -> int:
    """Upload every file of the backup, the manifest last; returns how many files were copied."""
    store = S3Store(settings)
    store.ensure_buckets()
    base = f"{PREFIX}/{folder.name}"
    for entry in manifest.files:
        store.put(f"{base}/{entry.path}", (folder / entry.path).read_bytes())
    store.put(f"{base}/{MANIFEST}", (folder / MANIFEST).read_bytes(), "application/json")
    return len(manifest.files) + 1
