"""Frozen descriptions of where a backing service can be reached; this is what fixtures hand to tests."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote


@dataclass(frozen=True, slots=True)
class PostgresService:
    """A PostgreSQL server plus the database a test should use (trust auth unless `password` is set)."""

    host: str
    port: int
    user: str
    dbname: str
    password: str = ""

    @property
    def dsn(self) -> str:
        """libpq URL, accepted by psycopg.connect() and psycopg_pool."""
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(self.dbname, safe='')}"

    def with_dbname(self, dbname: str) -> PostgresService:
        return dataclasses.replace(self, dbname=dbname)


@dataclass(frozen=True, slots=True)
class RedisService:
    """A Redis server; `db` and `key_prefix` are this test's share of it."""

    host: str
    port: int
    db: int = 0
    key_prefix: str = ""

    @property
    def url(self) -> str:
        """URL for redis.Redis.from_url(); it selects `db`."""
        return f"redis://{self.host}:{self.port}/{self.db}"


@dataclass(frozen=True, slots=True)
class MqttBroker:
    """An MQTT 3.1.1/5 broker accepting anonymous clients over plain TCP."""

    host: str
    port: int


@dataclass(frozen=True, slots=True)
class S3Service:
    """An S3-compatible HTTP endpoint (moto_server or MinIO)."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    kind: Literal["moto", "minio"] = "moto"

    @property
    def netloc(self) -> str:
        """`host:port`, the form the `minio` client takes (with secure=False)."""
        return self.endpoint.split("://", 1)[1].rstrip("/")

    @property
    def host(self) -> str:
        return self.netloc.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.netloc.rpartition(":")[2])

    @property
    def secure(self) -> bool:
        return self.endpoint.startswith("https://")

    @property
    def persistent(self) -> bool:
        """Whether objects survive a restart of the server (MinIO keeps them on disk, moto in memory only)."""
        return self.kind == "minio"
