"""The console's browser-facing rules: its Content-Security-Policy, its cookie, the Origin check.

The CSP allows nothing inline (no 'unsafe-inline'): scripts and styles come only from /console/static.
Images may also come from the object store's origin, where presigned photo and crop URLs point. Every
state-changing request must come from a page of this origin (the `Origin` header, which browsers send
on every POST and WebSocket handshake) and carry the session's CSRF token.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection

from central.settings import CentralSettings
from central.storage import S3Settings

COOKIE = "facegate_console"
COOKIE_PATH = "/console"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


def store_origin(settings: CentralSettings) -> str | None:
    """The origin presigned URLs point to: the S3 endpoint browsers use; None for the filesystem store
    (its URLs are central's own /files/...)."""
    storage = settings.storage
    if not isinstance(storage, S3Settings):
        return None
    scheme = "https" if storage.secure else "http"
    return f"{scheme}://{storage.public_endpoint or storage.endpoint}"


def content_security_policy(settings: CentralSettings) -> str:
    """The console's CSP (docs/console.md); the API keeps its own `default-src 'none'`."""
    images = " ".join(filter(None, ["'self'", store_origin(settings)]))
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src {images}; connect-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )


def is_secure(connection: ASGIConnection[Any, Any, Any, Any], settings: CentralSettings) -> bool:
    """Whether cookies get `Secure`: FACEGATE_CONSOLE_SECURE_COOKIES, or the request came over TLS (here
    or at a proxy that says so in X-Forwarded-Proto)."""
    if settings.console_secure_cookies or connection.url.scheme in {"https", "wss"}:
        return True
    return connection.headers.get("x-forwarded-proto", "").strip().lower() == "https"


def expected_origins(connection: ASGIConnection[Any, Any, Any, Any]) -> set[str]:
    """The origins a page of this console has, as the browser sees the host it asked for."""
    host = connection.headers.get("x-forwarded-host") or connection.headers.get("host") or ""
    hosts = {host.split(",")[0].strip()}
    port = connection.headers.get("x-forwarded-port", "").strip()
    if port.isdigit() and not any(":" in h for h in hosts):
        hosts |= {f"{h}:{port}" for h in hosts}  # a proxy that passes the host without its port
    return {f"{scheme}://{h}" for h in hosts for scheme in ("http", "https")}


def origin_allowed(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """True when the request's Origin is this console's (a missing Origin is refused too: browsers send
    it on every POST and WebSocket handshake, so only a forged or non-browser request lacks it)."""
    origin = connection.headers.get("origin")
    return origin is not None and origin in expected_origins(connection)
