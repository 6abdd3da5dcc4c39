"""Per-request context: a request id (taken from X-Request-ID when sane, else new), metrics, access log."""

from __future__ import annotations

import logging
import re
import time

from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Message,
    Receive,
    Scope,
    Send,
)

from central.metrics import Metrics
from common.ids import uuid7
from common.log import context

log = logging.getLogger("central.access")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class RequestContextMiddleware:
    """Sets the request id for logs and error bodies, echoes it in X-Request-ID, and records the request
    (route template, method, status, duration) in the metrics and one `request` log line."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        rid = _incoming_id(scope) or uuid7()
        token = context.set({**context.get(), "request_id": rid})
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("path_template") or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route, method).observe(elapsed)
            log.info(
                "request",
                extra={
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            context.reset(token)


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            text = value.decode("latin-1").strip()
            return text if _REQUEST_ID.fullmatch(text) else None
    return None


INTERNAL_PATHS = ("/metrics", "/health", "/ready")


class InternalPortMiddleware:
    """On FACEGATE_METRICS_PORT, only /metrics, /health and /ready (and /ready/...) are served: the API
    is not reachable there, so a network rule for that port (Prometheus only) gives nothing else away."""

    def __init__(self, app: ASGIApp, port: int) -> None:
        self.app = app
        self.port = port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server") if scope["type"] in {ScopeType.HTTP, ScopeType.WEBSOCKET} else None
        if server is None or server[1] != self.port or _internal(scope["path"]):
            await self.app(scope, receive, send)
            return
        if scope["type"] == ScopeType.WEBSOCKET:
            await send({"type": "websocket.close", "code": 1008, "reason": ""})
            return
        body = b'{"code":"not_found","message":"this port serves /metrics, /health and /ready only"}'
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": 404,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
        end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
        await send(start)
        await send(end)


def _internal(path: str) -> bool:
    trimmed = path.rstrip("/") or "/"
    return trimmed in INTERNAL_PATHS or trimmed.startswith("/ready/")
