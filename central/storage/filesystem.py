"""`FileStore`: the object store over a local folder (FACEGATE_STORAGE_DIR), for single-machine use.

Layout under the root: `data/{key}` holds the bytes, `meta/{key}.json` the content type, size and sha256,
`tmp/` the files being written. Every write goes to `tmp/`, is fsynced, then renamed into place (and the
folder fsynced), so a reader sees the old object or the new one, never part of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mimetypes
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from central.storage import signing
from central.storage.keys import validate_key, validate_prefix
from central.storage.objects import (
    DEFAULT_CONTENT_TYPE,
    InvalidKeyError,
    ObjectNotFound,
    StorageUnavailable,
    StoredObject,
    check_expiry,
)
from common.errors import ConfigError

STALE_TMP_S = 3600.0


@dataclass(frozen=True, slots=True)
class FileSettings:
    """`root`: the storage folder; `secret_key` signs presigned URLs; `base_url` prefixes them
    ("" gives relative URLs such as `/files/photos/p1/a.jpg?expires=...&sig=...`)."""

    root: Path
    secret_key: str
    base_url: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FileSettings:
        """Read FACEGATE_STORAGE_DIR and FACEGATE_SECRET_KEY (both required)."""
        root = env.get("FACEGATE_STORAGE_DIR", "").strip()
        if not root:
            raise ConfigError("FACEGATE_STORAGE_DIR is not set (needed for the filesystem object store)")
        secret = env.get("FACEGATE_SECRET_KEY", "").strip()
        if not secret:
            raise ConfigError("FACEGATE_SECRET_KEY is not set (it signs the filesystem store's file URLs)")
        signing.signature(secret, "probe", 0)  # refuses a too-short secret now rather than on first use
        return cls(root=Path(root).expanduser(), secret_key=secret)


class FileStore:
    """ObjectStore over a folder. Safe for several threads and processes on one machine (atomic renames;
    the last writer wins)."""

    def __init__(self, settings: FileSettings) -> None:
        self.settings = settings
        self.root = settings.root
        self._data = self.root / "data"
        self._meta = self.root / "meta"
        self._tmp = self.root / "tmp"

    def ensure_buckets(self) -> None:
        """Create the folders; remove temporary files older than an hour (writes that crashed)."""
        try:
            for folder in (self._data, self._meta, self._tmp):
                folder.mkdir(parents=True, exist_ok=True)
            cutoff = time.time() - STALE_TMP_S
            for leftover in self._tmp.iterdir():
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink(missing_ok=True)
        except OSError as err:
            raise StorageUnavailable(
                f"cannot use storage folder {self.root} ({err}): "
                "check FACEGATE_STORAGE_DIR and its permissions"
            ) from err

    def put(self, key: str, data: bytes, content_type: str = DEFAULT_CONTENT_TYPE) -> StoredObject:
        digest = hashlib.sha256(data).hexdigest()
        meta = {"content_type": content_type, "size": len(data), "sha256": digest}
        target = self._path(key)
        try:
            self._write_atomic(target, data)
            self._write_atomic(self._meta_path(key), json.dumps(meta).encode())
        except (NotADirectoryError, IsADirectoryError) as err:
            raise InvalidKeyError(
                f"object key {key!r}: clashes with an existing key used as a folder"
            ) from err
        except OSError as err:
            raise StorageUnavailable(
                f"cannot write {target}: {err}; check free space and permissions"
            ) from err
        return StoredObject(key, len(data), digest, content_type)

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as err:
            raise ObjectNotFound(key, f"storage folder {self.root}") from err

    def stat(self, key: str) -> StoredObject:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(key, f"storage folder {self.root}")
        size = path.stat().st_size
        meta = self._read_meta(key)
        if meta.get("size") == size and isinstance(meta.get("sha256"), str):
            sha = str(meta["sha256"])
        else:  # sidecar missing or from a concurrent write: recompute
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
        content_type = meta.get("content_type")
        if not isinstance(content_type, str):
            content_type = mimetypes.guess_type(key)[0] or DEFAULT_CONTENT_TYPE
        return StoredObject(key, size, sha, content_type)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            path.unlink()
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            self._meta_path(key).unlink()
        self._prune(path.parent, self._data)
        self._prune(self._meta_path(key).parent, self._meta)

    def delete_prefix(self, prefix: str) -> int:
        validate_prefix(prefix, allow_empty=False)
        folder = self._data / prefix
        if not folder.is_dir():
            return 0
        count = sum(1 for _ in self.list(prefix))
        shutil.rmtree(folder)
        shutil.rmtree(self._meta / prefix, ignore_errors=True)
        self._prune(folder.parent, self._data)
        self._prune((self._meta / prefix).parent, self._meta)
        return count

    def list(self, prefix: str = "") -> Iterator[str]:
        validate_prefix(prefix)
        folder = self._data / prefix if prefix else self._data
        keys: list[str] = []
        for dirpath, _dirs, files in os.walk(folder):
            relative = Path(dirpath).relative_to(self._data).as_posix()
            base = "" if relative == "." else relative + "/"
            keys.extend(base + name for name in files)
        return iter(sorted(keys))

    def presigned_get(self, key: str, expires_s: int) -> str:
        validate_key(key)
        check_expiry(expires_s)
        expires = int(time.time()) + expires_s
        return signing.signed_url(self.settings.secret_key, key, expires, self.settings.base_url)

    def verify_signed(self, key: str, expires: int | str, sig: str, now: float | None = None) -> bool:
        """Check a URL made by `presigned_get` (see `signing.verify_signed`)."""
        return signing.verify_signed(self.settings.secret_key, key, expires, sig, now)

    def _path(self, key: str) -> Path:
        return self._data / validate_key(key)

    def _meta_path(self, key: str) -> Path:
        return self._meta / (validate_key(key) + ".json")

    def _read_meta(self, key: str) -> dict[str, object]:
        try:
            loaded = json.loads(self._meta_path(key).read_bytes())
        except (OSError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def _write_atomic(self, target: Path, data: bytes) -> None:
        self._tmp.mkdir(parents=True, exist_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="put-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            try:
                Path(tmp_name).replace(target)
            except FileNotFoundError:  # a concurrent delete pruned the empty folder: make it again
                target.parent.mkdir(parents=True, exist_ok=True)
                Path(tmp_name).replace(target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)

    @staticmethod
    def _prune(folder: Path, top: Path) -> None:
        """Remove empty folders from `folder` up to (not including) `top`."""
        while folder != top and top in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
