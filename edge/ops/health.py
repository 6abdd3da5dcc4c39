"""The edge's local HTTP endpoint: /healthz (liveness), /readyz (readiness), /metrics (Prometheus).

/readyz answers 200 only when every check passes (models loaded, every enabled camera streaming,
broker connected) and 503 otherwise; both bodies are JSON listing each check.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

Checks = Callable[[], dict[str, bool]]


class HealthServer:
    """Serves the three endpoints from a background thread."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry, readiness: Checks) -> None:
        self.registry = registry
        self.readiness = readiness
        self.alive: Callable[[], bool] = lambda: True
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="health", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        log.info("health_listening", extra={"port": self.port})

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    alive = outer.alive()
                    self._json(200 if alive else 503, {"alive": alive})
                elif path == "/readyz":
                    checks = outer.readiness()
                    ready = all(checks.values())
                    self._json(200 if ready else 503, {"ready": ready, "checks": checks})
                elif path == "/metrics":
                    self._send(200, generate_latest(outer.registry), CONTENT_TYPE_LATEST)
                else:
                    self._json(404, {"error": f"no such endpoint {path}: use /healthz, /readyz or /metrics"})

            def _json(self, status: int, body: object) -> None:
                self._send(status, json.dumps(body).encode(), "application/json")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("health_request", extra={"request": format % args})

        return Handler
