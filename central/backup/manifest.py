"""The backup manifest (`manifest.json`): what a backup holds and the size and sha256 of every file.

A backup folder is complete when it has a manifest; the manifest is written last, inside a temporary
folder that is renamed into place, so a crash never leaves a folder that looks complete.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import FacegateError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DUMP = "database.dump"
OBJECTS = "objects"
_CHUNK = 1024 * 1024


class BackupError(FacegateError):
    """A backup cannot be written or restored; the message says what is wrong and what to do."""


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of the backup: its path relative to the backup folder, size, sha256 (hex) and, for an
    object, the content type it had in the store."""

    path: str
    size: int
    sha256: str
    content_type: str | None = None


@dataclass(slots=True)
class Manifest:
    created_at: str
    server_version: str
    server_version_num: int
    pg_dump_version: str
    migrations: list[str]
    files: list[FileEntry] = field(default_factory=list)
    format_version: int = FORMAT_VERSION
    retention: dict[str, Any] | None = None
    """The retention policies in force when the backup was taken (docs/retention.md)."""

    @property
    def object_count(self) -> int:
        return sum(1 for f in self.files if f.path.startswith(OBJECTS + "/"))

    @property
    def dump_major(self) -> int:
        return major_of(self.pg_dump_version)

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "created_at": self.created_at,
            "server_version": self.server_version,
            "server_version_num": self.server_version_num,
            "pg_dump_version": self.pg_dump_version,
            "migrations": self.migrations,
            "retention": self.retention,
            "object_count": self.object_count,
            "files": [
                {"path": f.path, "size": f.size, "sha256": f.sha256}
                | ({"content_type": f.content_type} if f.content_type is not None else {})
                for f in self.files
            ],
        }

    def write(self, folder: Path) -> None:
        (folder / MANIFEST).write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")


def major_of(version: str) -> int:
    """16 for "16.4", 15 for "15.20 (Debian ...)"."""
    try:
        return int(version.strip().split(".")[0].split()[0])
    except (ValueError, IndexError) as err:
        raise BackupError(f"cannot read a PostgreSQL major version from {version!r}") from err


def read_manifest(folder: Path) -> Manifest:
    """The manifest of the backup in `folder`; BackupError when it is missing or malformed."""
    path = folder / MANIFEST
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw["format_version"] != FORMAT_VERSION:
            raise BackupError(
                f"{path}: format version {raw['format_version']}, this release reads {FORMAT_VERSION}"
            )
        files = [
            FileEntry(str(f["path"]), int(f["size"]), str(f["sha256"]), f.get("content_type"))
            for f in raw["files"]
        ]
        return Manifest(
            created_at=str(raw["created_at"]),
            server_version=str(raw["server_version"]),
            server_version_num=int(raw["server_version_num"]),
            pg_dump_version=str(raw["pg_dump_version"]),
            migrations=[str(m) for m in raw["migrations"]],
            files=files,
            retention=raw.get("retention"),
        )
    except FileNotFoundError as err:
        raise BackupError(f"{folder} is not a complete backup: no {MANIFEST}") from err
    except (ValueError, KeyError, TypeError) as err:
        raise BackupError(f"{path} is malformed ({err}); the backup cannot be trusted") from err


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def entry_for(folder: Path, relative: str, content_type: str | None = None) -> FileEntry:
    path = folder / relative
    return FileEntry(relative, path.stat().st_size, sha256_file(path), content_type)


def verify(folder: Path, manifest: Manifest) -> None:
    """Check every file of the manifest against its size and sha256; BackupError names the first bad one."""
    for entry in manifest.files:
        path = folder / entry.path
        if not path.is_file():
            raise BackupError(f"backup file {entry.path} is missing from {folder}; refusing to restore")
        if path.stat().st_size != entry.size or sha256_file(path) != entry.sha256:
            raise BackupError(
                f"backup file {entry.path} does not match its checksum in {MANIFEST} (corrupted or changed);"
                " refusing to restore: use another backup"
            )
