"""deploy/haproxy: `haproxy -c` on the real configuration, then HAProxy run for real (foreground, free
ports on 127.0.0.1) in front of a real central: redirect, security headers, request ids, health checks
on /ready, body limits that match central's settings, stick-table rate limits, WebSocket tunnels and
the internal Prometheus endpoint.

`prepare` changes only the certificate path, the bind addresses and the replicas' addresses.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect as websocket_connect

from central.settings import CentralSettings
from demo.tls import make_certificates
from devtools.services.binaries import require_binary
from devtools.services.endpoints import PostgresService, RedisService, S3Service
from devtools.services.ports import free_port, port_is_listening
from tests.support.internal_paths import check_metrics_not_forwarded, check_ready_internal_only, ipv6_loopback
from tests.support.paths import REPO
from tests.system.deploy.test_compose import COMPOSE, compose_command
from tests.system.deploy.test_nginx import (
    A_TOKEN,
    WRONG_KEY,
    assert_security_headers,
    central_serving,
    post_headers_only,
    upload_limits,
    viewer_key,
)

ROOT = REPO
CONFIG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
CERT = "/usr/local/etc/haproxy/tls/facegate.pem"
OVERRIDE = ROOT / "deploy" / "haproxy" / "compose.override.yml"
WAIT_S = 30.0  # a bound on waits, not a timing check: the proxies share a loaded machine
MIB = 1024 * 1024


def haproxy_binary() -> str:
    return require_binary("haproxy", "haproxy")


@dataclass(frozen=True, slots=True)
class Balancer:
    config: Path
    cafile: Path
    ports: Mapping[str, int]

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cafile))

    def url(self, port: str, path: str) -> str:
        scheme = "https" if port == "https" else "http"
        return f"{scheme}://127.0.0.1:{self.ports[port]}{path}"


def prepare(tmp: Path, replicas: Mapping[str, str]) -> Balancer:
    """haproxy.cfg copied to `tmp`, with a throwaway certificate, local ports and `replicas`
    (`central-1:8000` -> an address)."""
    certs = make_certificates(tmp / "tls")
    pem = tmp / "tls" / "facegate.pem"
    pem.write_bytes(certs.certfile.read_bytes() + certs.keyfile.read_bytes())
    ports = {name: free_port() for name in ("http", "https", "stats")}
    replacements = {
        CERT: str(pem),
        "bind :80\n": f"bind 127.0.0.1:{ports['http']}\n",
        "bind :443 ": f"bind 127.0.0.1:{ports['https']} ",
        "bind :8404\n": f"bind 127.0.0.1:{ports['stats']}\n",
        **{f" {name}\n": f" {address}\n" for name, address in replicas.items()},
    }
    text = CONFIG.read_text()
    for old, new in replacements.items():
        assert old in text, f"deploy/haproxy/haproxy.cfg no longer holds {old!r}: update prepare()"
        text = text.replace(old, new)
    if ipv6_loopback():  # ::1 is outside the internal networks: the outsider's address
        https = re.search(rf"^( +)bind 127\.0\.0\.1:{ports['https']} (.*)$", text, re.MULTILINE)
        assert https is not None
        extra = f"{https.group(1)}bind [::1]:{ports['https']} {https.group(2)}"
        text = text.replace(https.group(0), f"{https.group(0)}\n{extra}")
    config = tmp / "haproxy.cfg"
    config.write_text(text)
    return Balancer(config, certs.cafile, ports)


def check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [haproxy_binary(), "-c", "-f", str(config)], capture_output=True, text=True, check=False
    )


def test_haproxy_config_passes_haproxy_c_with_no_warning_but_unresolved_names(tmp_path: Path) -> None:
    """As deployed, only the certificate differs: the replicas' names need not resolve here
    (init-addr last,libc,none), which are the only warnings allowed."""
    certs = make_certificates(tmp_path / "tls")
    pem = tmp_path / "facegate.pem"
    pem.write_bytes(certs.certfile.read_bytes() + certs.keyfile.read_bytes())
    config = tmp_path / "haproxy.cfg"
    config.write_text(CONFIG.read_text().replace(CERT, str(pem)))
    result = check(config)
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [line for line in (result.stdout + result.stderr).splitlines() if "[WARNING]" in line]
    assert all("could not resolve address" in line for line in warnings), warnings


def test_haproxy_c_rejects_an_unknown_keyword(tmp_path: Path) -> None:
    balancer = prepare(tmp_path, {"central-1:8000": "127.0.0.1:1", "central-2:8000": "127.0.0.1:1"})
    balancer.config.write_text(balancer.config.read_text().replace("balance leastconn", "balance nosuchalgo"))
    assert check(balancer.config).returncode != 0


@contextmanager
def running(balancer: Balancer, log: Path) -> Iterator[None]:
    with log.open("w") as out:
        process = subprocess.Popen(
            [haproxy_binary(), "-db", "-f", str(balancer.config)], stdout=out, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + WAIT_S
            while not port_is_listening("127.0.0.1", balancer.ports["https"]):
                if process.poll() is not None or time.monotonic() > deadline:
                    out.flush()
                    pytest.fail(f"haproxy did not start: {log.read_text()}")
                time.sleep(0.05)
            yield
        finally:
            process.terminate()
            process.wait(timeout=10)


@dataclass(frozen=True, slots=True)
class Fronted:
    balancer: Balancer
    central_url: str
    settings: CentralSettings


@pytest.fixture(scope="module")
def fronted(
    postgres_server: PostgresService,
    s3_server: S3Service,
    redis_server: RedisService,
    model_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Fronted]:
    """haproxy.cfg with central-1 = a real central and central-2 = a port where nothing listens."""
    tmp = tmp_path_factory.mktemp("haproxy")
    with central_serving(postgres_server, s3_server, redis_server, model_dir) as (url, settings):
        replicas = {
            "central-1:8000": url.removeprefix("http://"),
            "central-2:8000": f"127.0.0.1:{free_port()}",
        }
        balancer = prepare(tmp, replicas)
        with running(balancer, tmp / "haproxy.log"):
            yield Fronted(balancer, url, settings)


@pytest.fixture
def client(fronted: Fronted) -> Iterator[httpx.Client]:
    with httpx.Client(verify=fronted.balancer.context(), timeout=WAIT_S) as http_client:
        yield http_client


def test_haproxy_plain_http_redirects_permanently_to_https(fronted: Fronted) -> None:
    response = httpx.get(fronted.balancer.url("http", "/health?x=1"), follow_redirects=False)
    assert response.status_code == 301
    assert response.headers["location"] == f"https://127.0.0.1:{fronted.balancer.ports['http']}/health?x=1"


def test_haproxy_proxies_health_with_security_headers_and_request_id(
    client: httpx.Client, fronted: Fronted
) -> None:
    response = client.get(fronted.balancer.url("https", "/health"), headers={"X-Request-ID": "client-id.7"})
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert_security_headers(response.headers)
    assert response.headers["x-request-id"] == "client-id.7"
    generated = client.get(fronted.balancer.url("https", "/health"), headers={"X-Request-ID": "bad id"})
    assert len(generated.headers["x-request-id"]) == 36  # a UUID made by HAProxy, passed to central


def test_haproxy_gives_the_console_and_the_docs_their_own_csp(client: httpx.Client, fronted: Fronted) -> None:
    console = client.get(fronted.balancer.url("https", "/console/signin"))
    assert console.status_code == 200
    policies = console.headers.get_list("content-security-policy")
    assert all(p.startswith("default-src 'self'; script-src 'self'; style-src 'self';") for p in policies)
    assert "img-src 'self' https://127.0.0.1:9443;" in policies[-1]  # the object store of this host
    assert "no-referrer" not in console.headers["referrer-policy"]  # the forms keep their Origin
    docs = client.get(fronted.balancer.url("https", "/schema/swagger")).headers["content-security-policy"]
    assert "script-src 'self' 'unsafe-inline';" in docs and "https:" not in docs  # no CDN


def server_up(balancer: Balancer) -> dict[str, float]:
    """haproxy_server_status{state="UP"} per server of the backend central, from the stats port."""
    text = httpx.get(balancer.url("stats", "/metrics")).text
    return {
        sample.labels["server"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "haproxy_server_status" and sample.labels.get("state") == "UP"
    }


def ready_checks(central_url: str) -> float:
    """GET /ready requests central answered with 200 (the balancer's health checks)."""
    text = httpx.get(f"{central_url}/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "facegate_http_requests_total"
        and sample.labels.get("route") == "/ready"
        and sample.labels.get("status") == "200"
    )


def test_haproxy_health_checks_ready_and_takes_the_down_replica_out(
    client: httpx.Client, fronted: Fronted
) -> None:
    deadline = time.monotonic() + 3 * WAIT_S
    while server_up(fronted.balancer) != {"central-1": 1.0, "central-2": 0.0} or not ready_checks(
        fronted.central_url
    ):
        assert time.monotonic() < deadline, (server_up(fronted.balancer), ready_checks(fronted.central_url))
        time.sleep(0.2)
    assert [client.get(fronted.balancer.url("https", "/health")).status_code for _ in range(10)] == [200] * 10


@pytest.mark.parametrize(("path", "content_type", "limit"), upload_limits(), ids=["photos", "archives"])
def test_haproxy_upload_limit_equals_centrals(
    fronted: Fronted, path: str, content_type: str, limit: int
) -> None:
    port, context = fronted.balancer.ports["https"], fronted.balancer.context()
    over = post_headers_only(
        port, context, path, {"Content-Type": content_type, "Content-Length": str(limit + 1)}
    )
    assert over[0] == 413
    assert "proxy" in over[1]["message"]
    # At the limit the request goes on; central answers (here: no credential) by itself.
    at = post_headers_only(port, context, path, {"Content-Type": content_type, "Content-Length": str(limit)})
    assert at[0] == 401
    assert at[1]["code"] == "missing_credential"


@pytest.mark.parametrize("path", ["/api/v1/people", "/api/v1/people/x/photos", "/api/v1/enrollment-jobs"])
def test_haproxy_refuses_a_chunked_body_with_411_from_its_headers(fronted: Fronted, path: str) -> None:
    """HAProxy checks the limits on Content-Length only: a chunked body (5 MB once reached central on a
    1 MiB route) is refused before any of it is read, on every route."""
    port, context = fronted.balancer.ports["https"], fronted.balancer.context()
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    status, body = post_headers_only(port, context, path, headers)
    assert status == 411
    assert body["code"] == "length_required" and "Content-Length" in body["message"]


def test_haproxy_refuses_a_json_body_over_1_mib_with_413(client: httpx.Client, fronted: Fronted) -> None:
    response = client.post(
        fronted.balancer.url("https", "/api/v1/people"),
        content=b"{" + b" " * MIB + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


# Before the rate limit tests, which use up the allowance of requests with a key
def test_haproxy_tunnels_websockets_to_central(fronted: Fronted) -> None:
    uri = fronted.balancer.url("https", "/ws/events").replace("https://", "wss://")
    headers = {"Authorization": f"Bearer {viewer_key(fronted.settings)}"}
    with websocket_connect(
        uri, ssl=fronted.balancer.context(), additional_headers=headers, open_timeout=WAIT_S
    ) as ws:
        assert json.loads(ws.recv(timeout=WAIT_S)) == {"type": "ping"}


def test_haproxy_rate_limits_token_requests_with_429(client: httpx.Client, fronted: Fronted) -> None:
    responses = [client.post(fronted.balancer.url("https", "/api/v1/auth/token")) for _ in range(60)]
    statuses = [response.status_code for response in responses]
    assert statuses[:40] == [401] * 40
    assert 429 in statuses
    limited = responses[statuses.index(429)]
    assert limited.json()["code"] == "rate_limited"
    assert limited.headers["retry-after"] == "1"
    assert_security_headers(limited.headers)


def test_haproxy_auth_limit_covers_api_routes_with_a_key_but_not_tokens(
    client: httpx.Client, fronted: Fronted
) -> None:
    url = fronted.balancer.url("https", "/api/v1/sites")
    responses = [client.get(url, headers=WRONG_KEY) for _ in range(60)]
    assert any(r.status_code == 429 and r.json()["code"] == "rate_limited" for r in responses)  # HAProxy's
    assert [client.get(url, headers=A_TOKEN).status_code for _ in range(5)] == [401] * 5  # central's


def test_haproxy_does_not_forward_metrics_in_any_spelling(fronted: Fronted) -> None:
    check_metrics_not_forwarded(fronted.balancer.ports["https"], fronted.balancer.context())


def test_haproxy_serves_ready_only_to_internal_addresses_in_any_spelling(fronted: Fronted) -> None:
    check_ready_internal_only(fronted.balancer.ports["https"], fronted.balancer.context())


# --- the compose variant ----------------------------------------------------------------------------------


def test_haproxy_compose_override_replaces_nginx() -> None:
    """`docker compose -f compose.yml -f haproxy/compose.override.yml`: HAProxy on 80/443 with this
    configuration, nginx and its exporter switched off, the object store's proxy kept."""
    env = {**os.environ, "FACEGATE_PUBLIC_HOST": "facegate.example.com"}
    files = ["-f", str(COMPOSE), "-f", str(OVERRIDE)]
    result = subprocess.run(
        [*compose_command(), *files, "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=COMPOSE.parent,
    )
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert "nginx" not in services and "nginx-exporter" not in services
    assert "objects" in services
    haproxy = services["haproxy"]
    assert {port["target"] for port in haproxy["ports"]} == {80, 443}
    mounts = {
        Path(volume["source"]).relative_to(COMPOSE.parent).as_posix(): volume["target"]
        for volume in haproxy["volumes"]
    }
    assert mounts["haproxy/haproxy.cfg"] == "/usr/local/etc/haproxy/haproxy.cfg"
    assert mounts["certs/facegate.pem"] == CERT
    assert haproxy["image"].split(":")[1][0].isdigit()
