"""Writing a backup (`create_backup`) and reading one back (`restore_backup`). See docs/backup.md."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from central.backup import pgtools, repository
from central.backup.manifest import DUMP, BackupError, Manifest, entry_for, read_manifest, verify
from central.backup.objects import dump_objects, restore_objects, store_is_empty
from central.backup.retention import TMP_PREFIX
from central.storage import ObjectStore


@dataclass(frozen=True, slots=True)
class Restored:
    folder: Path
    manifest: Manifest
    objects: int
    pg_restore: str


def create_backup(dsn: str, store: ObjectStore, out: Path, now: datetime | None = None) -> Path:
    """Write `out/<UTC time>/` (database.dump, objects/, manifest.json) and return it.

    Everything is written to `out/.tmp-<time>/` first and renamed when complete; on failure the temporary
    folder is removed."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    final = out / stamp
    if final.exists():
        raise BackupError(f"{final} already exists; wait a moment and run the backup again")
    info = repository.server_info(dsn)
    tool = pgtools.find_tool("pg_dump", info.major)
    out.mkdir(parents=True, exist_ok=True)
    work = out / f"{TMP_PREFIX}{stamp}"
    work.mkdir()
    try:
        pgtools.run_tool(tool, ["--format=custom", "--no-owner", "--file", str(work / DUMP)], dsn)
        manifest = Manifest(
            created_at=datetime.now(UTC).isoformat(),
            server_version=info.version,
            server_version_num=info.version_num,
            pg_dump_version=tool.version,
            migrations=info.migrations,
            files=[entry_for(work, DUMP), *dump_objects(store, work)],
            retention=info.retention,
        )
        manifest.write(work)
        work.rename(final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return final


def restore_backup(dsn: str, store: ObjectStore, folder: Path, *, force: bool = False) -> Restored:
    """Verify every checksum, then pg_restore the dump into `dsn` and put every object back.

    Refuses (BackupError) a corrupted backup, and a non-empty database or store unless `force`; with
    `force`, pg_restore runs with --clean --if-exists, replacing the objects the dump holds."""
    manifest = read_manifest(folder)
    verify(folder, manifest)
    if not force:
        if not repository.database_is_empty(dsn):
            raise BackupError("the target database is not empty; restore into a new database or pass --force")
        if not store_is_empty(store):
            raise BackupError(
                "the target object store is not empty; use an empty bucket/folder or pass --force"
            )
    info = repository.server_info(dsn)
    tool = pgtools.find_tool("pg_restore", max(manifest.dump_major, info.major))
    args = ["--dbname", pgtools.dbname(dsn), "--no-owner", "--exit-on-error", "--single-transaction"]
    if force:
        args += ["--clean", "--if-exists"]
    pgtools.run_tool(tool, [*args, str(folder / DUMP)], dsn)
    objects = restore_objects(store, folder, manifest.files)
    return Restored(folder, manifest, objects, tool.path)
