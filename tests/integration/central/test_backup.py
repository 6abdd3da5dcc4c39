"""`facegate central backup` / `restore` as real processes: a backup of a central with people, photos,
templates, a gallery, a site with an edge and an event with its crop, restored into an empty database and
an empty bucket, finds everything again; a corrupted backup is refused; retention keeps the newest N."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
import pytest

from central.backup.manifest import MANIFEST
from central.backup.pgtools import find_tool
from central.backup.retention import complete_backups
from central.storage import FileSettings, FileStore, S3Settings, S3Store, crop_key
from common.errors import ConfigError
from demo.sample_faces import SamplePhoto
from devtools.services import PostgresService, S3Service
from devtools.services import s3 as s3_service
from devtools.services.postgres import create_database, drop_database
from tests.support.central_app import SECRET, Central, s3_settings
from tests.support.enroll_photos import enroll, new_person, photo, store

FACEGATE = str(Path(sys.executable).parent / "facegate")
TABLES = {
    "people": "SELECT id, external_id, display_name, metadata::text FROM people",
    "photos": "SELECT id, person_id, object_key, sha256 FROM enrollment_photos",
    "templates": "SELECT id, person_id, embedding FROM templates",
    "galleries": "SELECT id, name FROM galleries",
    "members": "SELECT gallery_id, person_id FROM gallery_people",
    "sites": "SELECT id, name FROM sites",
    "edges": "SELECT site_id, id FROM edges",
    "events": "SELECT id, ts, person_id, score, crop_key FROM events",
}


def s3_env(service: S3Service, bucket: str, dsn: str) -> dict[str, str]:
    scheme = "https" if service.secure else "http"
    return {
        "PATH": "/usr/bin:/bin",
        "FACEGATE_DATABASE_URL": dsn,
        "FACEGATE_S3_ENDPOINT": f"{scheme}://{service.netloc}",
        "FACEGATE_S3_ACCESS_KEY": service.access_key,
        "FACEGATE_S3_SECRET_KEY": service.secret_key,
        "FACEGATE_S3_REGION": service.region,
        "FACEGATE_S3_BUCKET": bucket,
    }


def facegate(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FACEGATE, "central", *args], capture_output=True, text=True, timeout=300, check=False, env=env
    )


def snapshot(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(dsn) as conn:
        return {name: sorted(conn.execute(query).fetchall(), key=repr) for name, query in TABLES.items()}


def populate(central: Central, samples: dict[str, SamplePhoto]) -> None:
    """A site with an edge, a gallery, an enrolled person and a recognition event with its crop."""
    admin = central.admin
    assert central.client.post("/api/v1/sites", json={"id": "hq"}, headers=admin).status_code == 201
    assert (
        central.client.post("/api/v1/sites/hq/edges", json={"id": "door-1"}, headers=admin).status_code == 201
    )
    gallery = {"id": "staff", "name": "Staff", "sites": ["hq"]}
    assert central.client.post("/api/v1/galleries", json=gallery, headers=admin).status_code == 201
    person = new_person(central, "obama", display_name="Barack", galleries=["staff"])
    assert enroll(central, person["id"], "obama.jpg", photo(samples, "obama"))["status"] == "accepted"
    event_id, ts = uuid4(), datetime.now(UTC)
    key = crop_key(event_id, ts)
    store(central).put(key, b"\xff\xd8 crop bytes", "image/jpeg")
    with central.db() as conn:
        conn.execute(
            "INSERT INTO events (id, ts, site_id, edge_id, camera, track_id, kind, person_id, score,"
            " threshold, quality, bbox, model_id, crop_key) VALUES (%s, %s, 'hq', 'door-1', 'door', 1,"
            " 'recognized', %s, 0.8, 0.36, 0.9, '{1,2,3,4}', 'sface-2021dec', %s)",
            (event_id, ts, person["id"], key),
        )


@pytest.fixture
def empty_target(postgres_server: PostgresService, s3_server: S3Service) -> Iterator[tuple[str, str]]:
    """A new empty database and a new empty bucket: (dsn, bucket)."""
    db = create_database(postgres_server)
    bucket = s3_service.create_bucket(s3_server)
    yield db.dsn, bucket
    s3_service.remove_bucket(s3_server, bucket)
    drop_database(postgres_server, db.dbname)


def test_backup_restore_into_empty_database_and_bucket_finds_everything(
    central: Central,
    samples: dict[str, SamplePhoto],
    s3_server: S3Service,
    empty_target: tuple[str, str],
    tmp_path: Path,
) -> None:
    populate(central, samples)
    site_policy = {"events_days": 30, "crops_days": 0}
    central.client.post("/api/v1/sites", json={"id": "kept-short"}, headers=central.admin)
    central.client.put("/api/v1/sites/kept-short/retention", json=site_policy, headers=central.admin)
    source = central.settings
    assert isinstance(source.storage, S3Settings)
    made = facegate(
        ["backup", "--out", str(tmp_path)], s3_env(s3_server, source.storage.bucket, source.database_url)
    )
    assert made.returncode == 0, made.stderr
    (folder,) = complete_backups(tmp_path)
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["object_count"] == 2 and manifest["migrations"]
    assert manifest["retention"]["defaults"]["events_days"] == 365  # the policies in force
    assert manifest["retention"]["sites"]["kept-short"] == site_policy | {
        "dead_letters_days": None,
        "deliveries_days": None,
    }
    dsn, bucket = empty_target
    restored = facegate(["restore", str(folder)], s3_env(s3_server, bucket, dsn))
    assert restored.returncode == 0, restored.stderr
    assert "objects: 2" in restored.stdout
    before = snapshot(source.database_url)
    assert all(before[name] for name in TABLES), before
    assert snapshot(dsn) == before
    migrated = facegate(["migrate"], s3_env(s3_server, bucket, dsn))
    assert migrated.returncode == 0 and "0 migration(s) applied" in migrated.stdout
    old, new = S3Store(source.storage), S3Store(s3_settings(s3_server, bucket))
    assert list(new.list("")) == list(old.list(""))
    for key in old.list(""):
        assert new.get(key) == old.get(key)
        assert new.stat(key).content_type == old.stat(key).content_type


def file_env(dsn: str, root: Path) -> dict[str, str]:
    """Settings for a filesystem store at `root` (created, empty, when missing)."""
    FileStore(FileSettings(root, SECRET)).ensure_buckets()
    return {
        "PATH": "/usr/bin:/bin",
        "FACEGATE_DATABASE_URL": dsn,
        "FACEGATE_STORAGE_DIR": str(root),
        "FACEGATE_SECRET_KEY": SECRET,
    }


def test_restore_of_a_corrupted_backup_refuses_naming_the_file(
    postgres_db: PostgresService, empty_target: tuple[str, str], tmp_path: Path
) -> None:
    objects = FileStore(FileSettings(tmp_path / "store", SECRET))
    env = file_env(postgres_db.dsn, tmp_path / "store")
    objects.put("photos/p1/a.jpg", b"photo bytes", "image/jpeg")
    made = facegate(["backup", "--out", str(tmp_path / "b")], env)
    assert made.returncode == 0, made.stderr
    (folder,) = complete_backups(tmp_path / "b")
    (folder / "objects/photos/p1/a.jpg").write_bytes(b"photo bytez")
    dsn, _ = empty_target
    refused = facegate(["restore", str(folder)], file_env(dsn, tmp_path / "empty"))
    assert refused.returncode != 0
    assert "objects/photos/p1/a.jpg" in refused.stderr and "checksum" in refused.stderr
    assert not list(FileStore(FileSettings(tmp_path / "empty", SECRET)).list(""))


def test_restore_into_a_non_empty_database_refuses_without_force(
    postgres_db: PostgresService, tmp_path: Path
) -> None:
    env = file_env(postgres_db.dsn, tmp_path / "store")
    assert facegate(["migrate"], env).returncode == 0
    assert facegate(["backup", "--out", str(tmp_path / "b")], env).returncode == 0
    (folder,) = complete_backups(tmp_path / "b")
    refused = facegate(["restore", str(folder)], env)
    assert refused.returncode != 0 and "not empty" in refused.stderr


def test_backup_retention_keeps_the_newest_n(postgres_db: PostgresService, tmp_path: Path) -> None:
    env = file_env(postgres_db.dsn, tmp_path / "store")
    out = tmp_path / "b"
    (out / "unrelated").mkdir(parents=True)
    names = []
    for _ in range(3):
        made = facegate(["backup", "--out", str(out), "--keep", "2"], env)
        assert made.returncode == 0, made.stderr
        names.append(complete_backups(out)[-1].name)
    assert [p.name for p in complete_backups(out)] == names[1:]
    assert (out / "unrelated").is_dir()
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]


def test_backup_copies_to_the_offsite_bucket(
    postgres_db: PostgresService, s3_server: S3Service, empty_target: tuple[str, str], tmp_path: Path
) -> None:
    _, offsite = empty_target
    scheme = "https" if s3_server.secure else "http"
    env = file_env(postgres_db.dsn, tmp_path / "store") | {
        "FACEGATE_OFFSITE_S3_ENDPOINT": f"{scheme}://{s3_server.netloc}",
        "FACEGATE_OFFSITE_S3_ACCESS_KEY": s3_server.access_key,
        "FACEGATE_OFFSITE_S3_SECRET_KEY": s3_server.secret_key,
        "FACEGATE_OFFSITE_S3_REGION": s3_server.region,
    }
    made = facegate(["backup", "--out", str(tmp_path / "b"), "--offsite-bucket", offsite], env)
    assert made.returncode == 0, made.stderr
    (folder,) = complete_backups(tmp_path / "b")
    remote = S3Store(s3_settings(s3_server, offsite))
    assert list(remote.list("")) == [
        f"backups/{folder.name}/database.dump",
        f"backups/{folder.name}/{MANIFEST}",
    ]
    assert remote.get(f"backups/{folder.name}/database.dump") == (folder / "database.dump").read_bytes()


def test_find_tool_without_a_new_enough_pg_dump_refuses_naming_the_version() -> None:
    with pytest.raises(ConfigError, match="no pg_dump of major version 99 or newer"):
        find_tool("pg_dump", 99)


def test_backup_of_a_missing_storage_folder_exits_3(postgres_db: PostgresService, tmp_path: Path) -> None:
    env = file_env(postgres_db.dsn, tmp_path / "store") | {"FACEGATE_STORAGE_DIR": str(tmp_path / "typo")}
    refused = facegate(["backup", "--out", str(tmp_path / "b")], env)
    assert refused.returncode == 3 and "typo" in refused.stderr
    assert not (tmp_path / "typo").exists() and complete_backups(tmp_path / "b") == []
