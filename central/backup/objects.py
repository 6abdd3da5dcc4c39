"""Copying every object of a store into a backup folder (`objects/<key>`) and back."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from central.backup.manifest import OBJECTS, FileEntry
from central.storage import ObjectStore


def dump_objects(store: ObjectStore, folder: Path) -> list[FileEntry]:
    """Write every object of `store` under `folder/objects/`, same keys; one manifest entry each."""
    entries: list[FileEntry] = []
    for key in store.list(""):
        data = store.get(key)
        content_type = store.stat(key).content_type
        target = folder / OBJECTS / key
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        entries.append(
            FileEntry(f"{OBJECTS}/{key}", len(data), hashlib.sha256(data).hexdigest(), content_type)
        )
    return entries


def restore_objects(store: ObjectStore, folder: Path, entries: list[FileEntry]) -> int:
    """Put every object entry of the manifest back under its key, with its content type; returns how many."""
    count = 0
    prefix = OBJECTS + "/"
    for entry in entries:
        if not entry.path.startswith(prefix):
            continue
        key = entry.path[len(prefix) :]
        data = (folder / entry.path).read_bytes()
        if entry.content_type:
            store.put(key, data, entry.content_type)
        else:
            store.put(key, data)
        count += 1
    return count


def store_is_empty(store: ObjectStore) -> bool:
    return next(iter(store.list("")), None) is None
