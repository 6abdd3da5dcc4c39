"""deploy/nginx: `nginx -t` on both configurations, then nginx run for real (foreground, a private
prefix, free ports on 127.0.0.1) in front of a real central (real PostgreSQL, S3 and Redis) and a real
S3 server: redirect, security headers, proxying, request ids, body limits that match central's own
settings, rate limits, WebSocket upgrades, a replica that is down, and the object store's two ports.

The files are used as deployed; `prepare` changes only what differs on a test machine (listen ports,
upstream host names, the certificate, cache and pid paths) and fails if one of those is not found.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as websocket_connect

from central.auth.repository import create_key_sync
from central.enrollment.jobs_upload import MULTIPART_OVERHEAD
from central.settings import CentralSettings
from central.storage.s3 import S3Settings, S3Store
from demo.tls import CertificateFiles, make_certificates
from devtools.services import postgres, redis, s3
from devtools.services.binaries import require_binary
from devtools.services.central import serve
from devtools.services.endpoints import PostgresService, RedisService, S3Service
from devtools.services.ports import free_port, port_is_listening
from tests.support.browser import Watched, launch, sign_in
from tests.support.central_app import make_settings, s3_settings
from tests.support.internal_paths import check_metrics_not_forwarded, check_ready_internal_only, ipv6_loopback
from tests.support.paths import REPO

ROOT = REPO
NGINX_DIR = ROOT / "deploy" / "nginx"
START_TIMEOUT_S = 10.0
WAIT_S = 30.0  # a bound on waits, not a timing check: the proxies share a loaded machine
MIB = 1024 * 1024


def nginx_binary() -> str:
    return require_binary("nginx", "nginx")


def outside_listen(port: int) -> str:
    return f"listen [::1]:{port} ssl http2;\n        " if ipv6_loopback() else ""


@dataclass(frozen=True, slots=True)
class Site:
    """A private copy of deploy/nginx and where its servers listen."""

    prefix: Path
    conf: Path
    certs: CertificateFiles
    ports: Mapping[str, int]

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.certs.cafile))

    def url(self, port: str, path: str) -> str:
        scheme = "http" if port == "http" else "https"
        return f"{scheme}://127.0.0.1:{self.ports[port]}{path}"


def prepare(tmp: Path, upstreams: Mapping[str, str]) -> Site:
    """deploy/nginx copied into `tmp/conf`, changed only where a test machine differs.

    `upstreams` maps each upstream `host:port` of the files (central-1:8000, central-2:8000,
    minio:9000) to a local address."""
    certs = make_certificates(tmp / "tls")
    conf = tmp / "conf"
    shutil.copytree(NGINX_DIR, conf)
    (tmp / "cache").mkdir()  # the image has /var/cache/nginx; nginx makes only the folders in it
    names = ("http", "https", "status", "public", "internal", "objects_status")
    ports = {name: free_port() for name in names}
    common = [
        ("/etc/nginx/tls/fullchain.pem", str(certs.certfile)),
        ("/etc/nginx/tls/privkey.pem", str(certs.keyfile)),
        ("/var/cache/nginx/", f"{tmp}/cache/"),
        *upstreams.items(),
    ]
    per_file = {
        "nginx.conf": [
            ("listen 80 ", f"listen 127.0.0.1:{ports['http']} "),
            # ::1 (when there is IPv6) is outside the internal networks: the outsider's address
            ("listen 443 ", f"{outside_listen(ports['https'])}listen 127.0.0.1:{ports['https']} "),
            ("listen 8081;", f"listen 127.0.0.1:{ports['status']};"),
        ],
        "objects.conf": [
            ("listen 9443 ", f"listen 127.0.0.1:{ports['public']} "),
            ("listen 9444 ", f"listen 127.0.0.1:{ports['internal']} "),
            ("listen 8081;", f"listen 127.0.0.1:{ports['objects_status']};"),
        ],
    }
    found = {old: 0 for old, _ in common}
    found |= {f"{name}: {old}": 0 for name, pairs in per_file.items() for old, _ in pairs}
    for path in conf.rglob("*.conf"):
        text = path.read_text()
        for old, new in common:
            found[old] += text.count(old)
            text = text.replace(old, new)
        for old, new in per_file.get(path.name, []):
            found[f"{path.name}: {old}"] += text.count(old)
            text = text.replace(old, new)
        path.write_text(text)
    missing = [old for old, count in found.items() if count == 0]
    assert not missing, f"deploy/nginx no longer holds {missing}: update prepare()"
    return Site(tmp, conf, certs, ports)


def nginx_command(site: Site, config: str, *extra: str) -> list[str]:
    # `user` is left to the build's default in the files; as root, workers must reach pytest's tmp dir.
    directives = f"daemon off; pid {site.prefix}/{config}.pid;"
    if os.geteuid() == 0:
        directives += " user root;"
    return [
        nginx_binary(),
        "-p",
        str(site.prefix),
        "-c",
        str(site.conf / config),
        "-e",
        "stderr",
        "-g",
        directives,
        *extra,
    ]


@contextmanager
def running(site: Site, config: str, port: str) -> Iterator[None]:
    """nginx in the foreground with `config` until the block ends; waits for `port` to listen."""
    log = (site.prefix / f"{config}.log").open("w")
    process = subprocess.Popen(nginx_command(site, config), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not port_is_listening("127.0.0.1", site.ports[port]):
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"nginx did not start: {(site.prefix / f'{config}.log').read_text()}")
            time.sleep(0.05)
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


# --- the configuration check ------------------------------------------------------------------------


@pytest.mark.parametrize("config", ["nginx.conf", "objects.conf"])
def test_nginx_config_passes_nginx_t(tmp_path: Path, config: str) -> None:
    upstreams = {
        "central-1:8000": "127.0.0.1:1",
        "central-2:8000": "127.0.0.1:1",
        "minio:9000": "127.0.0.1:1",
    }
    site = prepare(tmp_path, upstreams)
    result = subprocess.run(nginx_command(site, config, "-t"), capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_nginx_t_rejects_an_unknown_directive(tmp_path: Path) -> None:
    site = prepare(
        tmp_path,
        {"central-1:8000": "127.0.0.1:1", "central-2:8000": "127.0.0.1:1", "minio:9000": "127.0.0.1:1"},
    )
    path = site.conf / "snippets" / "proxy-headers.conf"
    path.write_text(path.read_text() + "proxy_no_such_directive on;\n")
    result = subprocess.run(
        nginx_command(site, "nginx.conf", "-t"), capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "proxy_no_such_directive" in result.stderr


# --- nginx in front of a real central -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Proxied:
    site: Site
    central_url: str
    settings: CentralSettings


@contextmanager
def central_serving(
    postgres_server: PostgresService, s3_server: S3Service, redis_server: RedisService, model_dir: Path
) -> Iterator[tuple[str, CentralSettings]]:
    """A real central over uvicorn (its own database, bucket and Redis database) pinging WebSocket
    clients every second: its base URL and settings. Shared with tests/system/deploy/test_haproxy.py."""
    db = postgres.create_database(postgres_server)
    bucket = s3.create_bucket(s3_server)
    rdb = redis.claim_database(redis_server)
    try:
        settings = make_settings(db, s3_settings(s3_server, bucket), model_dir, redis_url=rdb.url)
        settings = replace(settings, ws_ping_s=1.0, live_channel=f"facegate:events:test-{uuid.uuid4().hex}")
        with serve(settings) as url:
            yield url, settings
    finally:
        redis.release_database(rdb)
        s3.remove_bucket(s3_server, bucket)
        postgres.drop_database(postgres_server, db.dbname)


@pytest.fixture(scope="module")
def running_central(
    postgres_server: PostgresService, s3_server: S3Service, redis_server: RedisService, model_dir: Path
) -> Iterator[tuple[str, CentralSettings]]:
    with central_serving(postgres_server, s3_server, redis_server, model_dir) as served:
        yield served


@pytest.fixture(scope="module")
def proxied(
    running_central: tuple[str, CentralSettings],
    s3_server: S3Service,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Proxied]:
    """nginx.conf with central-1 = the real central and central-2 = a port where nothing listens (a
    replica that is down), plus objects.conf in front of the real S3 server."""
    url, settings = running_central
    upstreams = {
        "central-1:8000": url.removeprefix("http://"),
        "central-2:8000": f"127.0.0.1:{free_port()}",
        "minio:9000": s3_server.netloc,
    }
    site = prepare(tmp_path_factory.mktemp("nginx"), upstreams)
    with running(site, "nginx.conf", "https"), running(site, "objects.conf", "internal"):
        yield Proxied(site, url, settings)


@pytest.fixture
def client(proxied: Proxied) -> Iterator[httpx.Client]:
    with httpx.Client(verify=proxied.site.context(), timeout=WAIT_S) as http_client:
        yield http_client


def post_headers_only(
    port: int, context: ssl.SSLContext, path: str, headers: Mapping[str, str]
) -> tuple[int, dict[str, Any]]:
    """POST announcing a body (Content-Length) without sending it: the answer to the headers alone.
    Shared with tests/system/deploy/test_haproxy.py."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=WAIT_S)
    try:
        conn.putrequest("POST", path)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def send_headers_only(site: Site, path: str, headers: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
    return post_headers_only(site.ports["https"], site.context(), path, headers)


def assert_security_headers(headers: httpx.Headers) -> None:
    assert headers["strict-transport-security"].startswith("max-age=63072000")
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["content-security-policy"].startswith("default-src 'none'")


def test_nginx_plain_http_redirects_permanently_to_https(proxied: Proxied) -> None:
    response = httpx.get(proxied.site.url("http", "/api/v1/people?limit=5"), follow_redirects=False)
    assert response.status_code == 301
    assert response.headers["location"] == "https://127.0.0.1/api/v1/people?limit=5"


def test_nginx_proxies_health_with_security_headers(client: httpx.Client, proxied: Proxied) -> None:
    response = client.get(proxied.site.url("https", "/health"))
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert_security_headers(response.headers)
    assert "server" not in response.headers or "/" not in response.headers["server"]  # no version


def test_nginx_negotiates_tls_1_2_with_a_forward_secret_aead_cipher(proxied: Proxied) -> None:
    context = proxied.site.context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with httpx.Client(verify=context) as tls12:
        stream = tls12.get(proxied.site.url("https", "/health")).extensions["network_stream"]
        cipher = stream.get_extra_info("ssl_object").cipher()
    assert cipher[1] == "TLSv1.2"
    assert cipher[0].startswith("ECDHE-") and ("GCM" in cipher[0] or "CHACHA20" in cipher[0])


def test_nginx_offers_http2_on_its_tls_listener(proxied: Proxied) -> None:
    context = proxied.site.context()
    context.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", proxied.site.ports["https"]), timeout=WAIT_S) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.selected_alpn_protocol() == "h2"
    assert "listen 443 ssl http2 default_server;" in (NGINX_DIR / "nginx.conf").read_text()


def test_nginx_schema_pages_get_a_csp_that_allows_their_scripts(
    client: httpx.Client, proxied: Proxied
) -> None:
    response = client.get(proxied.site.url("https", "/schema/swagger"))
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self' 'unsafe-inline';" in csp
    assert "https:" not in csp  # no CDN: Swagger UI's assets come from central (docs work offline)


def test_nginx_serves_the_console_with_its_csp_and_chromium_reports_no_violation(proxied: Proxied) -> None:
    """Sign in, the fleet, the live events page (its WebSocket through nginx), people: one console CSP
    (central's), no CSP refusal and no script error in Chromium's console."""
    with psycopg.connect(proxied.settings.database_url) as conn:
        key = create_key_sync(conn, "nginx console", "admin").display
    with launch() as browser:
        watched = Watched.open(browser, proxied.site.url("https", ""), any_certificate=True)
        sign_in(watched.page, key)
        answer = watched.page.goto("/console/events")
        assert answer is not None
        policies = [
            h["value"] for h in answer.headers_array() if h["name"].lower() == "content-security-policy"
        ]
        assert (
            len(policies) == 1
        )  # central's, naming its object store; nginx adds one only to its own answers
        assert policies[0].startswith(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' "
        )
        assert "unsafe-inline" not in policies[0]
        assert "no-referrer" not in answer.headers["referrer-policy"]  # the forms keep their Origin
        watched.page.wait_for_selector("#live-state[data-live=open]", timeout=WAIT_S * 1000)
        watched.page.goto("/console/people")
        watched.page.goto("/schema/swagger")
        watched.page.wait_for_selector(".swagger-ui .info", timeout=WAIT_S * 1000)
        watched.close()
    assert watched.csp_violations() == []
    assert watched.errors == []
    assert watched.elsewhere == []  # Swagger UI and the console load nothing from a CDN


def test_nginx_own_answer_under_console_gets_the_console_csp(client: httpx.Client, proxied: Proxied) -> None:
    refused = client.post(proxied.site.url("https", "/console/people"), content=b"x" * (1024 * 1024 + 1))
    assert refused.status_code == 413  # nginx's own answer: central sent no policy, nginx adds it
    assert refused.headers.get_list("content-security-policy") == [
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https://127.0.0.1:9443; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ]


def test_nginx_passes_a_sane_request_id_through(client: httpx.Client, proxied: Proxied) -> None:
    response = client.get(proxied.site.url("https", "/health"), headers={"X-Request-ID": "client-id.42:a_b"})
    assert response.headers["x-request-id"] == "client-id.42:a_b"


def test_nginx_replaces_a_missing_or_insane_request_id_with_its_own(
    client: httpx.Client, proxied: Proxied
) -> None:
    for headers in ({}, {"X-Request-ID": "x" * 65}, {"X-Request-ID": "no spaces"}):
        response = client.get(proxied.site.url("https", "/health"), headers=headers)
        assert len(response.headers["x-request-id"]) == 32, headers  # nginx's $request_id, hex
        int(response.headers["x-request-id"], 16)


def test_nginx_does_not_forward_metrics_in_any_spelling(proxied: Proxied) -> None:
    assert "facegate_http_requests_total" in httpx.get(f"{proxied.central_url}/metrics/").text
    check_metrics_not_forwarded(proxied.site.ports["https"], proxied.site.context())


def test_nginx_serves_ready_only_to_internal_addresses_in_any_spelling(proxied: Proxied) -> None:
    check_ready_internal_only(proxied.site.ports["https"], proxied.site.context())


def test_nginx_refuses_a_json_body_over_1_mib_with_413(proxied: Proxied) -> None:
    status, body = send_headers_only(
        proxied.site, "/api/v1/people", {"Content-Type": "application/json", "Content-Length": str(MIB + 1)}
    )
    assert status == 413
    assert body["code"] == "payload_too_large"
    assert "proxy" in body["message"]


def upload_limits() -> list[tuple[str, str, int]]:
    """(path, content type, central's own limit in bytes) for the upload routes, from its defaults."""
    defaults = CentralSettings(database_url="", secret_key="", storage=S3Settings("x", "x", "x"))
    photos = defaults.max_photo_bytes * defaults.max_photos_per_request + MIB  # central/app.py
    archives = defaults.max_zip_bytes + MULTIPART_OVERHEAD  # central/enrollment/jobs_upload.py
    return [
        (f"/api/v1/people/{uuid.uuid4()}/photos", "multipart/form-data; boundary=x", photos),
        ("/api/v1/enrollment-jobs", "application/zip", archives),
    ]


@pytest.mark.parametrize(("path", "content_type", "limit"), upload_limits(), ids=["photos", "archives"])
def test_nginx_upload_limit_equals_centrals(
    proxied: Proxied, path: str, content_type: str, limit: int
) -> None:
    over = send_headers_only(
        proxied.site, path, {"Content-Type": content_type, "Content-Length": str(limit + 1)}
    )
    assert over[0] == 413
    assert "proxy" in over[1]["message"]
    # At the limit nginx streams the request on; central answers (here: no credential) by itself.
    at = send_headers_only(proxied.site, path, {"Content-Type": content_type, "Content-Length": str(limit)})
    assert at[0] == 401
    assert at[1]["code"] == "missing_credential"


# The WebSocket tests come before the rate limit tests, which use up this address's allowance.


def viewer_key(settings: CentralSettings) -> str:
    with psycopg.connect(settings.database_url) as conn:
        return create_key_sync(conn, "proxy test", "viewer", ()).display


def test_nginx_upgrades_websockets_to_central(proxied: Proxied) -> None:
    uri = proxied.site.url("https", "/ws/events").replace("https://", "wss://")
    headers = {"Authorization": f"Bearer {viewer_key(proxied.settings)}"}
    with websocket_connect(
        uri, ssl=proxied.site.context(), additional_headers=headers, open_timeout=WAIT_S
    ) as ws:
        frame = json.loads(ws.recv(timeout=WAIT_S))
        assert frame == {"type": "ping"}  # sent by central every FACEGATE_WS_PING_S (1 s here)
        ws.send("ignored")
        assert json.loads(ws.recv(timeout=WAIT_S)) == {"type": "ping"}


def test_nginx_passes_centrals_websocket_close_code(proxied: Proxied) -> None:
    uri = proxied.site.url("https", "/ws/events").replace("https://", "wss://")
    with (
        websocket_connect(uri, ssl=proxied.site.context(), open_timeout=WAIT_S) as ws,
        pytest.raises(ConnectionClosed) as closed,
    ):
        ws.recv(timeout=WAIT_S)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


def test_nginx_rate_limits_token_requests_with_429(client: httpx.Client, proxied: Proxied) -> None:
    responses = [client.post(proxied.site.url("https", "/api/v1/auth/token")) for _ in range(40)]
    statuses = [response.status_code for response in responses]
    assert statuses[:15] == [401] * 15  # central's answer: no credential
    assert 429 in statuses
    limited = responses[statuses.index(429)]
    assert limited.json()["code"] == "rate_limited"
    assert limited.headers["retry-after"] == "1"
    assert limited.headers["x-request-id"] == limited.json()["request_id"]
    assert_security_headers(limited.headers)


def test_nginx_still_answers_with_one_replica_down(client: httpx.Client, proxied: Proxied) -> None:
    statuses = [client.get(proxied.site.url("https", "/health")).status_code for _ in range(20)]
    assert statuses == [200] * 20


WRONG_KEY = {"Authorization": "Bearer fg_abcdefgh_" + "A" * 43}
A_TOKEN = {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2ln"}


def test_nginx_auth_limit_covers_api_routes_with_a_key_but_not_tokens(
    client: httpx.Client, proxied: Proxied
) -> None:
    """Last of the tests against central: it uses up this address's allowance of failures there too."""
    url = proxied.site.url("https", "/api/v1/sites")
    responses = [client.get(url, headers=WRONG_KEY) for _ in range(30)]
    assert any(r.status_code == 429 and r.json()["code"] == "rate_limited" for r in responses)  # nginx's
    assert [client.get(url, headers=A_TOKEN).status_code for _ in range(5)] == [401] * 5  # central's


# --- the object store's proxy (objects.conf) -------------------------------------------------------------


def test_objects_internal_port_stores_and_public_port_serves_presigned_urls(
    proxied: Proxied, s3_server: S3Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Central's own S3 client through both ports, as compose configures it: writes on the internal
    one, presigned URLs signed for the public one."""
    monkeypatch.setenv("SSL_CERT_FILE", str(proxied.site.certs.cafile))  # central's client: system CAs
    bucket = s3.create_bucket(s3_server)
    try:
        store = S3Store(
            S3Settings(
                endpoint=f"127.0.0.1:{proxied.site.ports['internal']}",
                public_endpoint=f"127.0.0.1:{proxied.site.ports['public']}",
                access_key=s3_server.access_key,
                secret_key=s3_server.secret_key,
                bucket=bucket,
                region=s3_server.region,
                secure=True,
            )
        )
        data = os.urandom(3 * MIB)
        store.put("photos/p1/a.jpg", data, "image/jpeg")
        url = store.presigned_get("photos/p1/a.jpg", 60)
        assert url.startswith(f"https://127.0.0.1:{proxied.site.ports['public']}/")
        response = httpx.get(url, verify=proxied.site.context())
        assert response.status_code == 200
        assert response.content == data
        assert response.headers["x-content-type-options"] == "nosniff"
    finally:
        s3.remove_bucket(s3_server, bucket)


def test_objects_public_port_refuses_writes(proxied: Proxied) -> None:
    url = proxied.site.url("public", "/facegate/photos/p1/a.jpg")
    for method in ("PUT", "POST", "DELETE"):
        response = httpx.request(method, url, content=b"x", verify=proxied.site.context())
        assert response.status_code == 403, method
        assert "nginx" in response.text  # refused by the proxy, not by S3
