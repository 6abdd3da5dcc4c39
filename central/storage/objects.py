"""The object store interface shared by the S3 (MinIO) and filesystem back ends, and its errors.

Central keeps enrollment photos, face crops, gallery snapshots and model artifacts as objects under the
prefixes built in `central.storage.keys`. Everything else (which objects exist for whom) lives in
PostgreSQL; the store only holds bytes. See docs/central-storage.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from common.errors import FacegateError

DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_PRESIGN_S = 7 * 24 * 3600
"""Longest lifetime of a presigned URL (S3's own limit is 7 days)."""


class StorageError(FacegateError):
    """Object storage failed; the subclasses say how."""


class InvalidKeyError(StorageError):
    """An object key or prefix breaks the key rules (see `central.storage.keys.validate_key`)."""


class ObjectNotFound(StorageError):  # noqa: N818  # name fixed by the Central issue
    """No object is stored under the key."""

    def __init__(self, key: str, where: str) -> None:
        super().__init__(f"no object {key!r} in {where}")
        self.key = key


class StorageUnavailable(StorageError):  # noqa: N818  # name fixed by the Central issue
    """The store cannot be used at all: unreachable, refused credentials, missing bucket, unwritable folder.
    The message says what to check."""


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What a store knows about one object.

    `sha256` is the hex digest of the bytes, recorded by `put`; it is None only for an object written by
    something other than this module (an S3 object without the `sha256` metadata). `etag` is the S3
    ETag without quotes (None on the filesystem store)."""

    key: str
    size: int
    sha256: str | None
    content_type: str
    etag: str | None = None


class ObjectStore(Protocol):
    """Bytes under validated keys. Implementations: `S3Store`, `FileStore`.

    Prefixes given to `list` and `delete_prefix` are "folder" prefixes: empty (list only) or ending in
    "/", so `photos/p1/` never matches `photos/p10/...`. Listing yields keys in lexicographic order.
    """

    def ensure_buckets(self) -> None:
        """Create the bucket (or folders) if missing; idempotent, call it at start-up."""
        ...

    def put(self, key: str, data: bytes, content_type: str = DEFAULT_CONTENT_TYPE) -> StoredObject:
        """Store `data` under `key`, replacing any object there (last writer wins)."""
        ...

    def get(self, key: str) -> bytes:
        """The object's bytes; ObjectNotFound when there is none."""
        ...

    def stat(self, key: str) -> StoredObject:
        """The object's metadata; ObjectNotFound when there is none."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove the object; a missing key is not an error."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object under the folder prefix (non-empty, ends in "/"); returns how many."""
        ...

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under the folder prefix, in lexicographic order."""
        ...

    def presigned_get(self, key: str, expires_s: int) -> str:
        """A URL that GETs the object without credentials for `expires_s` seconds (1 s to 7 days).
        The object's existence is not checked."""
        ...


def check_expiry(expires_s: int) -> None:
    """Refuse a presigned URL lifetime outside 1 s .. 7 days."""
    if not 1 <= expires_s <= MAX_PRESIGN_S:
        raise ValueError(f"expires_s={expires_s}: a presigned URL lives 1 to {MAX_PRESIGN_S} seconds")
