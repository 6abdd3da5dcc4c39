"""Operations routes at the root: /health (process up), /ready (dependencies), /metrics, /files (signed).

None of them needs a credential: /health and /ready are for load balancers, /metrics for Prometheus
(restrict it at the proxy), /files URLs carry their own signature and expiry.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
from litestar import Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from central.runtime import Runtime
from central.storage import FileStore, ObjectNotFound

READY_TIMEOUT_S = 2.0
_PROBE_KEY = "health/probe"


@get("/health", include_in_schema=True, tags=["operations"], sync_to_thread=False)
def health() -> dict[str, str]:
    """The process is up and serving requests."""
    return {"status": "ok"}


@get("/ready", tags=["operations"])
async def ready(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """Each dependency answered within 2 s: database, object storage, Redis (if set), MQTT broker (if set)."""
    runtime: Runtime = request.app.state.runtime
    checks = {"database": _database(runtime), "storage": _storage(runtime)}
    if runtime.redis is not None:
        checks["redis"] = _redis(runtime)
    if runtime.settings.mqtt_url:
        checks["broker"] = _mqtt(runtime) if runtime.mqtt is not None else _broker(runtime.settings.mqtt_url)
    results = await asyncio.gather(*(_timed(name, check) for name, check in checks.items()))
    body = {name: status for name, status in results}
    ok = all(status == "ok" for status in body.values())
    return Response(
        {"status": "ready" if ok else "not_ready", "checks": body}, status_code=200 if ok else 503
    )


@get("/metrics", tags=["operations"], sync_to_thread=False, media_type=CONTENT_TYPE_LATEST)
def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Prometheus metrics of this replica."""
    runtime: Runtime = request.app.state.runtime
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@get("/files/{key:path}", tags=["operations"], include_in_schema=False)
async def signed_file(
    request: Request[Any, Any, Any],
    key: FromPath[str],
    expires: FromQuery[str] = "",
    sig: FromQuery[str] = "",
) -> Response[bytes]:
    """An object of the filesystem store, by a URL from its `presigned_get` (404 when S3 is used)."""
    runtime: Runtime = request.app.state.runtime
    store = runtime.store
    key = key.lstrip("/")
    if not isinstance(store, FileStore) or not store.verify_signed(key, expires, sig):
        raise NotFoundException("no such file, or the link has expired")
    try:
        data = await anyio.to_thread.run_sync(store.get, key)
        stat = await anyio.to_thread.run_sync(store.stat, key)
    except ObjectNotFound as err:
        raise NotFoundException("no such file") from err
    return Response(data, media_type=stat.content_type, headers={"Cache-Control": "private, max-age=60"})


async def _timed(name: str, check: Any) -> tuple[str, str]:
    try:
        await asyncio.wait_for(check, READY_TIMEOUT_S)
    except TimeoutError:
        return name, f"timeout after {READY_TIMEOUT_S:g} s"
    except Exception as err:  # noqa: BLE001  # a readiness probe reports any failure of a dependency
        return name, f"error: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return name, "ok"


async def _database(runtime: Runtime) -> None:
    async with runtime.pool.connection(timeout=READY_TIMEOUT_S) as conn:
        await conn.execute("SELECT 1")


async def _storage(runtime: Runtime) -> None:
    await anyio.to_thread.run_sync(runtime.store.exists, _PROBE_KEY)


async def _redis(runtime: Runtime) -> None:
    assert runtime.redis is not None
    await runtime.redis.ping()


async def _mqtt(runtime: Runtime) -> None:
    """Central's own MQTT connection (a broker that accepts TCP but refuses the login is not ready)."""
    assert runtime.mqtt is not None
    if not runtime.mqtt.connected:
        raise ConnectionError(str(runtime.mqtt.fatal_error or "not connected to the MQTT broker"))


async def _broker(url: str) -> None:
    parts = urlsplit(url)
    port = parts.port or (8883 if parts.scheme in {"mqtts", "ssl"} else 1883)
    _, writer = await asyncio.open_connection(parts.hostname or "localhost", port)
    writer.close()
    await writer.wait_closed()
