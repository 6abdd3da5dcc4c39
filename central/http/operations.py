"""What the operations routes (central/http/routes.py) need: the readiness probes of each dependency, the
metrics registry, and the folder store's signed files. Built by central/lifespan.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
import redis.asyncio as aioredis
from prometheus_client import generate_latest

from central.db import repository as db
from central.db.pool import AsyncPool
from central.metrics import Metrics
from central.storage import FileStore, ObjectStore
from common.mqtt.aio import AsyncMqttClient

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 2.0
_PROBE_KEY = "health/probe"


class Operations:
    """`broker_url` is FACEGATE_MQTT_URL; `mqtt` central's own client when it has one."""

    def __init__(  # noqa: PLR0917  # one argument per dependency probed
        self,
        pool: AsyncPool,
        store: ObjectStore,
        redis: aioredis.Redis | None,
        metrics: Metrics,
        broker_url: str | None,
        mqtt: AsyncMqttClient | None,
        metrics_port: int = 0,
    ) -> None:
        self.pool = pool
        self.store = store
        self.redis = redis
        self.metrics = metrics
        self.broker_url = broker_url
        self.mqtt = mqtt
        self.metrics_port = metrics_port
        self.ingest: Callable[[], dict[str, Any]] | None = None
        """Event ingest's `Progress.health`, set by the lifespan when ingest runs (`GET /ready/ingest`)."""

    async def readiness(self) -> dict[str, str]:
        """{dependency: "ok", "timeout" or "unavailable"}: database, storage, Redis and broker (if set)."""
        checks: dict[str, Coroutine[Any, Any, None]] = {
            "database": self._database(),
            "storage": self._storage(),
        }
        if self.redis is not None:
            checks["redis"] = _redis(self.redis)
        if self.broker_url:
            checks["broker"] = self._mqtt(self.mqtt) if self.mqtt is not None else _broker(self.broker_url)
        results = await asyncio.gather(*(_timed(name, check) for name, check in checks.items()))
        return {name: status for name, status in results}

    def serves_metrics(self, server: object) -> bool:
        """Whether /metrics is answered on the local address `server` (the ASGI scope's): on any
        port when FACEGATE_METRICS_PORT is 0, else only on that one."""
        if not self.metrics_port:
            return True
        return isinstance(server, (tuple, list)) and len(server) == 2 and server[1] == self.metrics_port

    def ingest_health(self) -> dict[str, Any]:
        """Whether event ingest moves: `status` ok, stalled, or not_running (no MQTT on this replica)."""
        if self.ingest is None:
            return {"status": "not_running"}
        health = self.ingest()
        return {"status": "stalled" if health["stalled"] else "ok", **health}

    def exposition(self) -> bytes:
        """This replica's metrics in the Prometheus text format."""
        return generate_latest(self.metrics.registry)

    async def signed_file(self, key: str, expires: str, sig: str) -> tuple[bytes, str] | None:
        """(bytes, content type) of a folder-store object whose signed URL is valid; None when the store is
        not a folder or the signature is bad or expired; ObjectNotFound when there is no such object."""
        store = self.store
        if not isinstance(store, FileStore) or not store.verify_signed(key, expires, sig):
            return None
        data = await anyio.to_thread.run_sync(store.get, key)
        stat = await anyio.to_thread.run_sync(store.stat, key)
        return data, stat.content_type

    async def _database(self) -> None:
        async with self.pool.connection(timeout=READY_TIMEOUT_S) as conn:
            await db.ping(conn)

    async def _storage(self) -> None:
        await anyio.to_thread.run_sync(self.store.exists, _PROBE_KEY)

    @staticmethod
    async def _mqtt(mqtt: AsyncMqttClient) -> None:
        """Central's own MQTT connection (a broker that accepts TCP but refuses the login is not ready)."""
        if not mqtt.connected:
            raise ConnectionError(str(mqtt.login_error or "not connected to the MQTT broker"))


async def _timed(name: str, check: Coroutine[Any, Any, None]) -> tuple[str, str]:
    """(check, "ok" | "timeout" | "unavailable"): the answer is generic, because /ready is read by load
    balancers and may leak past a proxy; the detail (host and user names, addresses) goes to the log."""
    try:
        await asyncio.wait_for(check, READY_TIMEOUT_S)
    except TimeoutError:
        log.warning(
            "ready_check_failed", extra={"check": name, "error": f"timeout after {READY_TIMEOUT_S:g} s"}
        )
        return name, "timeout"
    except Exception as err:  # noqa: BLE001  # a readiness probe reports any failure of a dependency
        log.warning("ready_check_failed", extra={"check": name, "error": f"{type(err).__name__}: {err}"})
        return name, "unavailable"
    return name, "ok"


async def _redis(redis: aioredis.Redis) -> None:
    await redis.ping()


async def _broker(url: str) -> None:
    parts = urlsplit(url)
    port = parts.port or (8883 if parts.scheme in {"mqtts", "ssl"} else 1883)
    _, writer = await asyncio.open_connection(parts.hostname or "localhost", port)
    writer.close()
    await writer.wait_closed()
