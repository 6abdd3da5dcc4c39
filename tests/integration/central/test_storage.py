"""Object storage: one set of behaviours run against S3Store (on the test S3 server) and FileStore."""

from __future__ import annotations

import hashlib
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from central.storage import (
    FileSettings,
    FileStore,
    InvalidKeyError,
    ObjectNotFound,
    ObjectStore,
    S3Settings,
    S3Store,
    StorageUnavailable,
    crop_key,
    model_key,
    open_store,
    person_photos_prefix,
    photo_key,
    snapshot_key,
    verify_signed,
)
from common.errors import ConfigError, FacegateError
from devtools.services import S3Factory, S3Service
from devtools.services import s3 as s3_helpers
from tests.support.central_app import s3_settings

SECRET = "test-secret-key-0123456789abcdef"
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4


def _s3_store(service: S3Service, bucket: str) -> S3Store:
    return S3Store(s3_settings(service, bucket))


@pytest.fixture(params=["s3", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    """A ready, empty store: S3Store on a fresh bucket of the test S3 server, or FileStore in tmp_path."""
    made: ObjectStore
    if request.param == "s3":
        made = _s3_store(request.getfixturevalue("s3_server"), request.getfixturevalue("s3_bucket"))
    else:
        made = FileStore(FileSettings(root=tmp_path / "objects", secret_key=SECRET))
    made.ensure_buckets()
    yield made


@pytest.fixture
def s3_store(s3_server: S3Service, s3_bucket: str) -> S3Store:
    made = _s3_store(s3_server, s3_bucket)
    made.ensure_buckets()
    return made


@pytest.fixture
def file_store(tmp_path: Path) -> FileStore:
    made = FileStore(FileSettings(root=tmp_path / "objects", secret_key=SECRET))
    made.ensure_buckets()
    return made


# --- the same behaviours on both stores ---------------------------------------------------------------


def test_store_put_then_get_returns_bytes_and_sha256(store: ObjectStore) -> None:
    stored = store.put("photos/p1/a.jpg", JPEG, "image/jpeg")
    assert stored.key == "photos/p1/a.jpg"
    assert stored.size == len(JPEG)
    assert stored.sha256 == hashlib.sha256(JPEG).hexdigest()
    assert store.get("photos/p1/a.jpg") == JPEG


def test_store_stat_after_put_reports_size_sha256_and_type(store: ObjectStore) -> None:
    store.put("snapshots/g1/3.msgpack", b"\x81\xa1a\x01", "application/msgpack")
    info = store.stat("snapshots/g1/3.msgpack")
    assert (info.size, info.sha256, info.content_type) == (
        4,
        hashlib.sha256(b"\x81\xa1a\x01").hexdigest(),
        "application/msgpack",
    )


def test_store_put_existing_key_replaces_object(store: ObjectStore) -> None:
    store.put("models/m1/model.onnx", b"old")
    store.put("models/m1/model.onnx", b"newer")
    assert store.get("models/m1/model.onnx") == b"newer"
    assert store.stat("models/m1/model.onnx").size == 5


def test_store_get_missing_key_raises_object_not_found(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound, match=r"photos/nobody/x\.jpg") as caught:
        store.get("photos/nobody/x.jpg")
    assert isinstance(caught.value, FacegateError)
    assert caught.value.key == "photos/nobody/x.jpg"
    with pytest.raises(ObjectNotFound):
        store.stat("photos/nobody/x.jpg")


def test_store_exists_follows_put_and_delete(store: ObjectStore) -> None:
    assert not store.exists("crops/2024/05/01/e1.jpg")
    store.put("crops/2024/05/01/e1.jpg", JPEG, "image/jpeg")
    assert store.exists("crops/2024/05/01/e1.jpg")
    store.delete("crops/2024/05/01/e1.jpg")
    assert not store.exists("crops/2024/05/01/e1.jpg")


def test_store_delete_twice_is_idempotent(store: ObjectStore) -> None:
    store.put("photos/p1/a.jpg", JPEG)
    store.delete("photos/p1/a.jpg")
    store.delete("photos/p1/a.jpg")
    store.delete("photos/never/there.jpg")
    assert list(store.list()) == []


def test_store_delete_prefix_removes_exactly_that_prefix(store: ObjectStore) -> None:
    erased = ["photos/p1/a.jpg", "photos/p1/b.jpg", "photos/p1/sub/c.jpg"]
    kept = ["photos/p10/a.jpg", "photos/p2/a.jpg", "photos/p1.jpg", "crops/2024/05/01/e1.jpg"]
    for key in erased + kept:
        store.put(key, key.encode())
    assert list(store.list("photos/p1/")) == sorted(erased)
    assert store.delete_prefix("photos/p1/") == 3
    assert list(store.list("photos/p1/")) == []
    assert list(store.list()) == sorted(kept)
    assert store.delete_prefix("photos/p1/") == 0


def test_store_list_by_prefix_yields_sorted_keys(store: ObjectStore) -> None:
    keys = ["snapshots/g1/2.msgpack", "snapshots/g1/10.msgpack", "snapshots/g2/1.msgpack", "models/m/f"]
    for key in keys:
        store.put(key, b"x")
    assert list(store.list("snapshots/g1/")) == ["snapshots/g1/10.msgpack", "snapshots/g1/2.msgpack"]
    assert list(store.list("snapshots/")) == sorted(keys[:3])
    assert list(store.list("nothing/")) == []
    assert list(store.list()) == sorted(keys)


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/photos/a.jpg",
        "photos/../secrets",
        "photos/./a",
        "photos//a",
        "photos/a/",
        "a\nb",
        "a\\b",
        "k" * 1025,
    ],
)
def test_store_bad_key_raises_invalid_key(store: ObjectStore, key: str) -> None:
    with pytest.raises(InvalidKeyError):
        store.put(key, b"x")
    with pytest.raises(InvalidKeyError):
        store.get(key)


@pytest.mark.parametrize("prefix", ["photos", "photos/p1", "../", "/photos/"])
def test_store_bad_prefix_raises_invalid_key(store: ObjectStore, prefix: str) -> None:
    with pytest.raises(InvalidKeyError):
        list(store.list(prefix))
    with pytest.raises(InvalidKeyError):
        store.delete_prefix(prefix)


def test_store_delete_prefix_empty_is_refused(store: ObjectStore) -> None:
    store.put("photos/p1/a.jpg", b"x")
    with pytest.raises(InvalidKeyError, match="every object"):
        store.delete_prefix("")
    assert store.exists("photos/p1/a.jpg")


def test_store_ensure_buckets_twice_keeps_objects(store: ObjectStore) -> None:
    store.put("photos/p1/a.jpg", b"x")
    store.ensure_buckets()
    store.ensure_buckets()
    assert store.get("photos/p1/a.jpg") == b"x"


def test_store_presigned_get_bad_expiry_raises(store: ObjectStore) -> None:
    with pytest.raises(ValueError, match="expires_s"):
        store.presigned_get("photos/p1/a.jpg", 0)


# --- S3Store ------------------------------------------------------------------------------------------


def test_s3_presigned_get_fetches_without_credentials(s3_store: S3Store) -> None:
    s3_store.put("photos/p1/a b.jpg", JPEG, "image/jpeg")
    url = s3_store.presigned_get("photos/p1/a b.jpg", 60)
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == JPEG
        assert response.headers["Content-Type"] == "image/jpeg"


def test_s3_presigned_get_url_carries_expiry(s3_store: S3Store) -> None:
    url = s3_store.presigned_get("photos/p1/a.jpg", 90)
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["90"]
    signed_at = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - signed_at).total_seconds()) < 60


def test_s3_presigned_get_after_expiry_is_refused(s3_server: S3Service, s3_store: S3Store) -> None:
    if s3_server.kind != "minio":
        pytest.skip("moto_server does not enforce presigned URL expiry (MinIO does)")
    s3_store.put("photos/p1/a.jpg", JPEG)
    url = s3_store.presigned_get("photos/p1/a.jpg", 1)
    time.sleep(2.5)
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(url, timeout=10)
    assert caught.value.code == 403


def test_s3_presigned_get_public_endpoint_signs_for_that_host(s3_server: S3Service, s3_bucket: str) -> None:
    settings = S3Settings(
        endpoint=s3_server.netloc,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        bucket=s3_bucket,
        secure=False,
        public_endpoint="files.example.org:9000",
    )
    store = S3Store(settings)
    assert store.presigned_get("photos/p1/a.jpg", 60).startswith(
        f"http://files.example.org:9000/{s3_bucket}/"
    )


def test_s3_ensure_buckets_missing_bucket_creates_it(s3_server: S3Service) -> None:
    bucket = f"facegate-test-{uuid.uuid4().hex[:12]}"
    store = _s3_store(s3_server, bucket)
    client = s3_helpers.client(s3_server)
    try:
        store.ensure_buckets()
        store.ensure_buckets()
        assert client.bucket_exists(bucket_name=bucket)
    finally:
        if client.bucket_exists(bucket_name=bucket):
            client.remove_bucket(bucket_name=bucket)


def test_s3_store_missing_bucket_raises_storage_unavailable(s3_server: S3Service) -> None:
    store = _s3_store(s3_server, f"facegate-test-absent-{uuid.uuid4().hex[:8]}")
    with pytest.raises(StorageUnavailable, match="ensure_buckets"):
        store.put("photos/p1/a.jpg", b"x")
    with pytest.raises(StorageUnavailable, match="ensure_buckets"):
        store.get("photos/p1/a.jpg")
    assert not store.exists("photos/p1/a.jpg")


def test_s3_store_server_down_raises_storage_unavailable(s3_factory: S3Factory) -> None:
    server = s3_factory()
    store = _s3_store(server.endpoint, "facegate")
    store.ensure_buckets()
    store.put("photos/p1/a.jpg", b"x")
    server.stop()
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="FACEGATE_S3_ENDPOINT") as caught:
        store.get("photos/p1/a.jpg")
    assert server.endpoint.netloc in str(caught.value)
    assert time.monotonic() - started < 10
    with pytest.raises(StorageUnavailable):
        list(store.list("photos/"))


def test_s3_settings_from_env_applies_defaults() -> None:
    env = {
        "FACEGATE_S3_ENDPOINT": "http://minio:9000",
        "FACEGATE_S3_ACCESS_KEY": "a",
        "FACEGATE_S3_SECRET_KEY": "b",
    }
    settings = S3Settings.from_env(env)
    assert (settings.endpoint, settings.secure, settings.bucket, settings.region) == (
        "minio:9000",
        False,
        "facegate",
        "us-east-1",
    )
    assert S3Settings.from_env({**env, "FACEGATE_S3_ENDPOINT": "s3.example.org"}).secure


def test_s3_settings_from_env_missing_key_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="FACEGATE_S3_SECRET_KEY"):
        S3Settings.from_env({"FACEGATE_S3_ENDPOINT": "http://minio:9000", "FACEGATE_S3_ACCESS_KEY": "a"})


# --- FileStore ----------------------------------------------------------------------------------------


def _signed_parts(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    return unquote(parts.path.removeprefix("/files/")), query["expires"][0], query["sig"][0]


def test_file_presigned_get_is_relative_files_url(file_store: FileStore) -> None:
    url = file_store.presigned_get("photos/p1/a b.jpg", 60)
    assert url.startswith("/files/photos/p1/a%20b.jpg?expires=")
    key, expires, _sig = _signed_parts(url)
    assert key == "photos/p1/a b.jpg"
    assert 55 <= int(expires) - time.time() <= 61


def test_file_verify_signed_right_signature_is_accepted(file_store: FileStore) -> None:
    key, expires, sig = _signed_parts(file_store.presigned_get("photos/p1/a.jpg", 60))
    assert file_store.verify_signed(key, expires, sig)
    assert verify_signed(SECRET, key, int(expires), sig, now=float(expires))


def test_file_verify_signed_tampered_key_is_rejected(file_store: FileStore) -> None:
    _key, expires, sig = _signed_parts(file_store.presigned_get("photos/p1/a.jpg", 60))
    assert not file_store.verify_signed("photos/p2/a.jpg", expires, sig)


def test_file_verify_signed_tampered_expiry_is_rejected(file_store: FileStore) -> None:
    key, expires, sig = _signed_parts(file_store.presigned_get("photos/p1/a.jpg", 60))
    assert not file_store.verify_signed(key, str(int(expires) + 3600), sig)
    assert not file_store.verify_signed(key, "0" + expires, sig)
    assert not file_store.verify_signed(key, "soon", sig)


def test_file_verify_signed_expired_url_is_rejected(file_store: FileStore) -> None:
    key, expires, sig = _signed_parts(file_store.presigned_get("photos/p1/a.jpg", 1))
    assert file_store.verify_signed(key, expires, sig, now=int(expires))
    assert not file_store.verify_signed(key, expires, sig, now=int(expires) + 1)


def test_file_verify_signed_other_secret_is_rejected(file_store: FileStore) -> None:
    key, expires, sig = _signed_parts(file_store.presigned_get("photos/p1/a.jpg", 60))
    assert not verify_signed("another-secret-0123456789", key, expires, sig)
    assert not file_store.verify_signed(key, expires, "0" * 64)


def test_file_store_put_leaves_no_temporary_files(file_store: FileStore) -> None:
    file_store.put("photos/p1/a.jpg", JPEG, "image/jpeg")
    assert list((file_store.root / "tmp").iterdir()) == []
    assert (file_store.root / "data/photos/p1/a.jpg").read_bytes() == JPEG


def test_file_store_stat_without_sidecar_derives_type_and_sha256(file_store: FileStore) -> None:
    file_store.put("photos/p1/a.jpg", JPEG, "image/jpeg")
    (file_store.root / "meta/photos/p1/a.jpg.json").unlink()
    info = file_store.stat("photos/p1/a.jpg")
    assert (info.content_type, info.sha256) == ("image/jpeg", hashlib.sha256(JPEG).hexdigest())


def test_file_store_delete_removes_empty_folders(file_store: FileStore) -> None:
    file_store.put("crops/2024/05/01/e1.jpg", JPEG)
    file_store.delete("crops/2024/05/01/e1.jpg")
    assert list((file_store.root / "data").iterdir()) == []


def test_file_settings_from_env_short_secret_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="FACEGATE_SECRET_KEY"):
        FileSettings.from_env({"FACEGATE_STORAGE_DIR": str(tmp_path), "FACEGATE_SECRET_KEY": "short"})


def test_open_store_env_picks_backend(tmp_path: Path) -> None:
    file_env = {"FACEGATE_STORAGE_DIR": str(tmp_path), "FACEGATE_SECRET_KEY": SECRET}
    assert isinstance(open_store(file_env), FileStore)
    s3_env = {
        "FACEGATE_S3_ENDPOINT": "http://m:9000",
        "FACEGATE_S3_ACCESS_KEY": "a",
        "FACEGATE_S3_SECRET_KEY": "b",
    }
    assert isinstance(open_store({**file_env, **s3_env}), S3Store)
    with pytest.raises(ConfigError, match="FACEGATE_STORAGE_DIR"):
        open_store({})


# --- keys ---------------------------------------------------------------------------------------------


def test_keys_builders_follow_documented_layout() -> None:
    ts = datetime(2024, 5, 1, 23, 30, tzinfo=timezone(timedelta(hours=-2)))
    assert photo_key("p1", "ph9") == "photos/p1/ph9.jpg"
    assert person_photos_prefix("p1") == "photos/p1/"
    assert crop_key("ev-1", ts) == "crops/2024/05/02/ev-1.jpg"
    assert snapshot_key("g1", 7) == "snapshots/g1/7.msgpack"
    assert model_key("sface_2021dec", "model.onnx") == "models/sface_2021dec/model.onnx"


@pytest.mark.parametrize("bad", ["", "..", "a/b", ".hidden", "a b"])
def test_keys_builders_bad_id_raises_invalid_key(bad: str) -> None:
    with pytest.raises(InvalidKeyError):
        photo_key(bad, "x")


def test_keys_crop_key_naive_time_raises_invalid_key() -> None:
    with pytest.raises(InvalidKeyError, match="timezone"):
        crop_key("e1", datetime(2024, 5, 1))
