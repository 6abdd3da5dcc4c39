"""Central under test: the real app (create_app) over real PostgreSQL, S3 (or a folder), Redis and models.

Fixtures (registered by tests/conftest.py):
- `central_settings`: settings on a fresh database (migrated by the app's start-up), a fresh S3 bucket,
  a fresh Redis database and the fetched models;
- `central`: a started app (lifespan run) in Litestar's TestClient, with an admin key; `central.as_(key)`
  gives headers for another credential and `central.key(scope, sites)` creates one.
- `shared_central(...)`: the same for a whole module (its own database, bucket and Redis database on the
  session's servers), for modules whose tests only add rows of their own.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from litestar.testing import TestClient

from central.app import create_app
from central.auth.repository import create_key_sync
from central.settings import CentralSettings
from central.storage import FileSettings, S3Settings
from devtools.services import PostgresService, RedisService, S3Service, postgres, redis, s3

SECRET = "test-secret-key-with-at-least-32-bytes-0123456789"


def s3_settings(service: S3Service, bucket: str) -> S3Settings:
    return S3Settings(
        endpoint=service.netloc,
        access_key=service.access_key,
        secret_key=service.secret_key,
        bucket=bucket,
        region=service.region,
        secure=service.secure,
        retries=0,
        connect_timeout_s=2.0,
    )


def make_settings(
    db: PostgresService, storage: S3Settings | FileSettings, model_dir: Path, **overrides: Any
) -> CentralSettings:
    base = CentralSettings(
        database_url=db.dsn,
        secret_key=SECRET,
        storage=storage,
        models_dir=model_dir,
        db_pool_min=1,
        db_pool_max=4,
        enroll_workers=2,
        rate_limit_per_s=1000.0,
        rate_limit_burst=1000,
        # tests send many wrong credentials from one address; test_auth_limits.py sets its own limits
        auth_fail_ip_burst=1000,
        auth_fail_key_burst=1000,
    )
    return replace(base, **overrides)


@dataclass
class Central:
    """A started app and an admin credential."""

    client: TestClient[Any]
    settings: CentralSettings
    admin_key: str

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}

    @staticmethod
    def as_(credential: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {credential}"}

    def key(self, scope: str, sites: Sequence[str] = (), name: str = "") -> str:
        """A new API key of `scope` (restricted to `sites`), stored directly in the database."""
        with psycopg.connect(self.settings.database_url) as conn:
            return create_key_sync(conn, name, scope, sites).display

    def db(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.settings.database_url, autocommit=True)


def start_central(settings: CentralSettings) -> Iterator[Central]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        with psycopg.connect(settings.database_url) as conn:
            admin = create_key_sync(conn, "test admin", "admin").display
        yield Central(client, settings, admin)


@pytest.fixture
def central_settings(
    postgres_db: PostgresService,
    s3_server: S3Service,
    s3_bucket: str,
    redis_db: RedisService,
    model_dir: Path,
) -> CentralSettings:
    return make_settings(postgres_db, s3_settings(s3_server, s3_bucket), model_dir, redis_url=redis_db.url)


@pytest.fixture
def central(central_settings: CentralSettings) -> Iterator[Central]:
    yield from start_central(central_settings)


@contextmanager
def shared_central(
    postgres_server: PostgresService,
    s3_server: S3Service,
    redis_server: RedisService,
    model_dir: Path,
    **overrides: Any,
) -> Iterator[Central]:
    """A started central on a fresh database, bucket and Redis database of the session's servers, all
    removed afterwards: build a module-scoped fixture with it."""
    db = postgres.create_database(postgres_server)
    bucket = s3.create_bucket(s3_server)
    redis_db = redis.claim_database(redis_server)
    try:
        storage = s3_settings(s3_server, bucket)
        settings = make_settings(db, storage, model_dir, redis_url=redis_db.url, **overrides)
        yield from start_central(settings)
    finally:
        redis.release_database(redis_db)
        s3.remove_bucket(s3_server, bucket)
        postgres.drop_database(postgres_server, db.dbname)
