"""`S3Store`: the object store over S3 or MinIO, through the `minio` client.

Settings come from FACEGATE_S3_* variables (see `S3Settings.from_env`); nothing is read at import time
and the constructor does no I/O: call `ensure_buckets()` at start-up.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError

from central.storage.keys import validate_key, validate_prefix
from central.storage.objects import (
    DEFAULT_CONTENT_TYPE,
    ObjectNotFound,
    StorageError,
    StorageUnavailable,
    StoredObject,
    check_expiry,
)
from common.errors import ConfigError

SHA256_META = "sha256"
_DELETE_BATCH = 1000
_AUTH_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken"}


@dataclass(frozen=True, slots=True)
class S3Settings:
    """Where the objects live. `endpoint` is `host:port` (no scheme); `public_endpoint`, when set, is the
    `host:port` browsers use for presigned URLs (a signature covers the host, so URLs are signed for it)."""

    endpoint: str
    access_key: str
    secret_key: str
    bucket: str = "facegate"
    region: str = "us-east-1"
    secure: bool = True
    public_endpoint: str | None = None
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0
    retries: int = 2

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> S3Settings:
        """Read FACEGATE_S3_ENDPOINT (`http://host:port`, `https://host:port`, or `host:port` = https),
        FACEGATE_S3_ACCESS_KEY, FACEGATE_S3_SECRET_KEY (required), FACEGATE_S3_BUCKET (default
        "facegate"), FACEGATE_S3_REGION (default "us-east-1") and FACEGATE_S3_PUBLIC_ENDPOINT (optional
        URL that presigned URLs use)."""
        endpoint, secure = _parse_endpoint(_required(env, "FACEGATE_S3_ENDPOINT"), "FACEGATE_S3_ENDPOINT")
        public = env.get("FACEGATE_S3_PUBLIC_ENDPOINT", "").strip()
        public_netloc = None
        if public:
            public_netloc, public_secure = _parse_endpoint(public, "FACEGATE_S3_PUBLIC_ENDPOINT")
            if public_secure != secure:
                raise ConfigError(
                    "FACEGATE_S3_PUBLIC_ENDPOINT: must use the same scheme as FACEGATE_S3_ENDPOINT"
                )
        return cls(
            endpoint=endpoint,
            access_key=_required(env, "FACEGATE_S3_ACCESS_KEY"),
            secret_key=_required(env, "FACEGATE_S3_SECRET_KEY"),
            bucket=env.get("FACEGATE_S3_BUCKET", "").strip() or "facegate",
            region=env.get("FACEGATE_S3_REGION", "").strip() or "us-east-1",
            secure=secure,
            public_endpoint=public_netloc,
        )

    @property
    def url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.endpoint}"


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is not set (needed for S3/MinIO object storage)")
    return value


def _parse_endpoint(value: str, name: str) -> tuple[str, bool]:
    if "://" not in value:
        return value.rstrip("/"), True
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.path not in {"", "/"}:
        raise ConfigError(f"{name}={value!r}: expected http://host:port or https://host:port, no path")
    return parts.netloc, parts.scheme == "https"


class S3Store:
    """ObjectStore over one S3 bucket. Thread-safe (the minio client is)."""

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=settings.connect_timeout_s, read=settings.read_timeout_s),
            retries=urllib3.Retry(
                total=settings.retries, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]
            ),
            maxsize=10,
        )
        self._client = self._make_client(settings.endpoint, http)
        public = settings.public_endpoint
        self._signer = self._client if public is None else self._make_client(public, None)

    def _make_client(self, endpoint: str, http: urllib3.PoolManager | None) -> Minio:
        s = self.settings
        return Minio(
            endpoint,
            access_key=s.access_key,
            secret_key=s.secret_key,
            secure=s.secure,
            region=s.region,  # known region: presigning needs no request
            http_client=http,
        )

    @contextmanager
    def _errors(self, key: str | None = None) -> Iterator[None]:
        """Translate minio and transport errors into StorageError subclasses that say what to check."""
        where = f"S3 bucket {self.bucket!r} at {self.settings.url}"
        try:
            yield
        except S3Error as err:
            if err.code == "NoSuchKey" and key is not None:
                raise ObjectNotFound(key, where) from err
            if err.code == "NoSuchBucket":
                raise StorageUnavailable(
                    f"{where}: the bucket does not exist; call ensure_buckets()"
                ) from err
            if err.code in _AUTH_CODES:
                raise StorageUnavailable(
                    f"{where} refused the credentials ({err.code}): check FACEGATE_S3_ACCESS_KEY and "
                    "FACEGATE_S3_SECRET_KEY"
                ) from err
            raise StorageError(f"{where}: {err.code}: {err.message}") from err
        except (ServerError, InvalidResponseError) as err:
            raise StorageUnavailable(f"{where} answered with an error: {err}") from err
        except (urllib3.exceptions.HTTPError, OSError) as err:
            reason = str(getattr(err, "reason", None) or err).rsplit(": ", 1)[-1]
            raise StorageUnavailable(
                f"cannot reach {where} ({reason}): check FACEGATE_S3_ENDPOINT, that "
                "MinIO/S3 is running, and the network between"
            ) from err
        except MinioException as err:
            raise StorageError(f"{where}: {err}") from err

    def ensure_buckets(self) -> None:
        with self._errors():
            if not self._client.bucket_exists(self.bucket):
                try:
                    self._client.make_bucket(self.bucket, location=self.settings.region)
                except S3Error as err:  # another replica created it meanwhile
                    if err.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                        raise

    def put(self, key: str, data: bytes, content_type: str = DEFAULT_CONTENT_TYPE) -> StoredObject:
        validate_key(key)
        digest = hashlib.sha256(data).hexdigest()
        with self._errors(key):
            result = self._client.put_object(
                self.bucket,
                key,
                io.BytesIO(data),
                len(data),
                content_type=content_type,
                metadata={SHA256_META: digest},
            )
        etag = result.etag.strip('"') if result.etag else None
        return StoredObject(key, len(data), digest, content_type, etag)

    def get(self, key: str) -> bytes:
        validate_key(key)
        with self._errors(key):
            response = self._client.get_object(self.bucket, key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

    def stat(self, key: str) -> StoredObject:
        validate_key(key)
        with self._errors(key):
            info = self._client.stat_object(self.bucket, key)
        meta = {name.lower(): value for name, value in (info.metadata or {}).items()}
        sha = meta.get(f"x-amz-meta-{SHA256_META}")
        return StoredObject(
            key,
            int(info.size or 0),
            str(sha) if sha else None,
            info.content_type or DEFAULT_CONTENT_TYPE,
            info.etag.strip('"') if info.etag else None,
        )

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except ObjectNotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        validate_key(key)
        with self._errors(key):
            self._client.remove_object(self.bucket, key)

    def delete_prefix(self, prefix: str) -> int:
        validate_prefix(prefix, allow_empty=False)
        removed = 0
        batch: list[str] = []
        for key in self.list(prefix):
            batch.append(key)
            if len(batch) == _DELETE_BATCH:
                removed += self._delete_batch(batch)
                batch = []
        return removed + (self._delete_batch(batch) if batch else 0)

    def _delete_batch(self, keys: Sequence[str]) -> int:
        with self._errors():
            # remove_objects is lazy: iterating its errors is what sends the request.
            errors = list(self._client.remove_objects(self.bucket, [DeleteObject(k) for k in keys]))
        if errors:
            first = errors[0]
            raise StorageError(
                f"S3 bucket {self.bucket!r}: {len(errors)} of {len(keys)} deletes failed, "
                f"first {first.name!r}: {first.code} {first.message}"
            )
        return len(keys)

    def list(self, prefix: str = "") -> Iterator[str]:
        validate_prefix(prefix)  # here, not in the generator, so a bad prefix fails at the call
        return self._iter_keys(prefix)

    def _iter_keys(self, prefix: str) -> Iterator[str]:
        with self._errors():
            for obj in self._client.list_objects(self.bucket, prefix=prefix or None, recursive=True):
                if obj.object_name is not None and not obj.is_dir:
                    yield obj.object_name

    def presigned_get(self, key: str, expires_s: int) -> str:
        validate_key(key)
        check_expiry(expires_s)
        with self._errors(key):
            url: str = self._signer.presigned_get_object(
                self.bucket, key, expires=timedelta(seconds=expires_s)
            )
        return url
