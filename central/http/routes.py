"""Operations routes at the root: /health (process up), /ready (dependencies), /ready/ingest (event
ingest moving; not part of /ready, so one poison edge never takes the HTTP API out of a load balancer),
/metrics, /files (signed).

None of them needs a credential: /health and /ready are for load balancers, /metrics for Prometheus
(refused by the proxies; with FACEGATE_METRICS_PORT set, served on that internal port only, which
serves nothing but /metrics, /health and /ready), /files URLs carry their own signature and expiry.
What they check and serve comes from central/http/operations.py (the `operations` dependency).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from prometheus_client import CONTENT_TYPE_LATEST

from central.http.operations import Operations
from central.storage import ObjectNotFound


@get("/health", include_in_schema=True, tags=["operations"], sync_to_thread=False)
def health() -> dict[str, str]:
    """The process is up and serving requests."""
    return {"status": "ok"}


@get("/ready", tags=["operations"])
async def ready(operations: NamedDependency[Operations]) -> Response[dict[str, Any]]:
    """Each dependency answered within 2 s: database, object storage, Redis (if set), MQTT broker (if set)."""
    body = await operations.readiness()
    ok = all(status == "ok" for status in body.values())
    return Response(
        {"status": "ready" if ok else "not_ready", "checks": body}, status_code=200 if ok else 503
    )


@get("/ready/ingest", tags=["operations"], sync_to_thread=False)
def ready_ingest(operations: NamedDependency[Operations]) -> Response[dict[str, Any]]:
    """503 while event messages have waited FACEGATE_INGEST_STALL_S with nothing acknowledged. For
    alerting and dashboards, not for load balancers (`/ready` does not include it)."""
    body = operations.ingest_health()
    return Response(body, status_code=503 if body["status"] == "stalled" else 200)


@get("/metrics", tags=["operations"], sync_to_thread=False, media_type=CONTENT_TYPE_LATEST)
def metrics(request: Request[Any, Any, Any], operations: NamedDependency[Operations]) -> Response[bytes]:
    """Prometheus metrics of this replica (only on FACEGATE_METRICS_PORT when that is set)."""
    if not operations.serves_metrics(request.scope.get("server")):
        raise NotFoundException()
    return Response(operations.exposition(), media_type=CONTENT_TYPE_LATEST)


@get("/files/{key:path}", tags=["operations"], include_in_schema=False)
async def signed_file(
    operations: NamedDependency[Operations],
    key: FromPath[str],
    expires: FromQuery[str] = "",
    sig: FromQuery[str] = "",
) -> Response[bytes]:
    """An object of the filesystem store, by a URL from its `presigned_get` (404 when S3 is used)."""
    try:
        found = await operations.signed_file(key.lstrip("/"), expires, sig)
    except ObjectNotFound as err:
        raise NotFoundException("no such file") from err
    if found is None:
        raise NotFoundException("no such file, or the link has expired")
    data, content_type = found
    return Response(data, media_type=content_type, headers={"Cache-Control": "private, max-age=60"})
