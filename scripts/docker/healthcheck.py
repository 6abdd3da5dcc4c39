"""Container health check: exit 0 when the URL answers 2xx in time, 1 otherwise (standard library only).

    healthcheck.py [URL]

URL defaults to `$FACEGATE_HEALTH_URL`; the timeout is `$FACEGATE_HEALTH_TIMEOUT_S` seconds (default
3). Docker reads only 0 (healthy) and 1 (unhealthy) and reserves 2, so every failure, a bad argument
included, exits 1 with one line on stderr. Proxy variables are ignored: the check talks to the
process in its own container. The images point it at the liveness routes (edge `/healthz`, central
`/health`); readiness (`/readyz`, `/ready`) is for load balancers and orchestrators.
"""

from __future__ import annotations

import http.client
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

HEALTHY = 0
UNHEALTHY = 1
DEFAULT_TIMEOUT_S = 3.0


def _fail(message: str) -> int:
    sys.stderr.write(f"healthcheck: {message}\n")
    return UNHEALTHY


def check(url: str, timeout_s: float) -> int:
    """HEALTHY when `url` answers with a 2xx status within `timeout_s` seconds."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        return _fail(f"{url!r} is not an http:// or https:// URL")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout_s) as response:
            status = int(response.status)
    except urllib.error.HTTPError as err:
        status = err.code
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
        return _fail(f"{url}: {getattr(err, 'reason', err)}")
    if 200 <= status < 300:
        return HEALTHY
    return _fail(f"{url}: HTTP {status}")


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else os.environ.get("FACEGATE_HEALTH_URL", "")
    if not url:
        return _fail("no URL: give one or set FACEGATE_HEALTH_URL")
    raw_timeout = os.environ.get("FACEGATE_HEALTH_TIMEOUT_S", str(DEFAULT_TIMEOUT_S))
    try:
        timeout_s = float(raw_timeout)
    except ValueError:
        return _fail(f"FACEGATE_HEALTH_TIMEOUT_S must be a number of seconds, not {raw_timeout!r}")
    if timeout_s <= 0:
        return _fail(f"FACEGATE_HEALTH_TIMEOUT_S must be above 0, not {raw_timeout!r}")
    return check(url, timeout_s)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
