"""`facegate central serve`: uvicorn on the API port and, when FACEGATE_METRICS_PORT is set, on that
internal port too (the same app in the same process: central/http/middleware.py's InternalPortMiddleware
serves only /metrics, /health and /ready there, and /metrics is served only there)."""

from __future__ import annotations

import socket
import sys
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

STARTUP_FAILURE = 3


def run(host: str, port: int, metrics_port: int, *, workers: int, log_level: str) -> None:
    """Serve `central.asgi:app` until a signal; uvicorn re-raises SIGTERM/SIGINT after shutting down."""
    options: dict[str, Any] = {
        "factory": True,
        "host": host,
        "port": port,
        "workers": workers,
        "log_config": None,
        "log_level": log_level,
        "proxy_headers": True,
        "access_log": False,
    }
    if not metrics_port:
        uvicorn.run("central.asgi:app", **options)
        return
    config = uvicorn.Config("central.asgi:app", **options)
    sockets = [config.bind_socket(), _bind(host, metrics_port)]
    server = uvicorn.Server(config)
    if workers > 1:
        Multiprocess(config, sockets=sockets).run()
        return
    server.run(sockets=sockets)
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family=family, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock
