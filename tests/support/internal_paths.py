"""Reaching central's internal paths (`/metrics`, `/ready`) through a proxy as an outsider would: every
spelling of the path, sent exactly as written, from an address outside the internal networks (::1)."""

from __future__ import annotations

import http.client
import socket
import ssl

import pytest

WAIT_S = 30.0  # a bound on waits, not a timing check: the proxies share a loaded machine


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


INTERNAL_PATHS = [
    "/{name}",
    "/{name}/",
    "//{name}",
    "/./{name}",
    "/api/../{name}",
    "/%2F{name}",
    "/{name};x",
    "/{name}.json",
    "/{name}?x=1",
    "/{upper}",
    "/{title}/",
]
"""Spellings of an internal path (`name`), as an outsider would try them."""


def spellings(name: str) -> list[str]:
    quoted = "".join(f"%{ord(c):02x}" if i == 0 else c for i, c in enumerate(name))
    paths = [p.format(name=name, upper=name.upper(), title=name.title()) for p in INTERNAL_PATHS]
    return [
        *paths,
        f"/{quoted}",
        f"/{quoted.upper()}/",
        f"/{name}/ingest" if name == "ready" else f"/{name}/x",
    ]


def raw_get(host: str, port: int, context: ssl.SSLContext, path: str) -> tuple[int, str]:
    """GET with `path` exactly as given (no client-side normalisation), over TLS."""
    conn = http.client.HTTPSConnection(host, port, context=context, timeout=WAIT_S)
    try:
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", "127.0.0.1")
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


def check_metrics_not_forwarded(port: int, context: ssl.SSLContext) -> None:
    """No spelling of /metrics reaches central's metrics through the proxy's TLS port."""
    answers = {path: raw_get("127.0.0.1", port, context, path) for path in spellings("metrics")}
    leaked = {path: status for path, (status, body) in answers.items() if "facegate_" in body}
    assert not leaked
    assert answers["/metrics"][0] == 404


def check_ready_internal_only(port: int, context: ssl.SSLContext) -> None:
    """/ready answers the internal network and no spelling of it answers an outside address (::1)."""
    assert raw_get("127.0.0.1", port, context, "/ready")[0] == 200  # the internal network
    if not ipv6_loopback():
        pytest.skip("no IPv6 loopback to act as an outside address")
    context.check_hostname = False  # the test certificate names 127.0.0.1
    answers = {path: raw_get("::1", port, context, path) for path in spellings("ready")}
    leaked = {path: status for path, (status, body) in answers.items() if "checks" in body or status < 400}
    assert not leaked
    assert answers["/ready"][0] == 403
