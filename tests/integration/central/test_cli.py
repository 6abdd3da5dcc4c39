"""`facegate central migrate | create-key | serve` as real processes against a real PostgreSQL."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
from websockets.sync.client import connect as websocket_connect

from central.auth.keys import parse_api_key, verify_secret
from devtools.services import PostgresService
from devtools.services.ports import free_port
from tests.support.central_app import SECRET

FACEGATE = str(Path(sys.executable).parent / "facegate")


def test_central_migrate_empty_database_then_no_op(postgres_db: PostgresService) -> None:
    first = subprocess.run(
        [FACEGATE, "central", "migrate", "--database-url", postgres_db.dsn],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert first.returncode == 0, first.stderr
    assert "applied 0001_core.sql" in first.stdout
    again = subprocess.run(
        [FACEGATE, "central", "migrate"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"FACEGATE_DATABASE_URL": postgres_db.dsn, "PATH": "/usr/bin:/bin"},
    )
    assert again.returncode == 0 and "0 migration(s) applied" in again.stdout
    with psycopg.connect(postgres_db.dsn) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY name")]
    assert names[0] == "0001_core.sql" and len(names) == len(set(names))


def test_central_migrate_without_database_exits_3() -> None:
    proc = subprocess.run(
        [FACEGATE, "central", "migrate"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 3 and "FACEGATE_DATABASE_URL" in proc.stderr


def _run(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FACEGATE, *args], capture_output=True, text=True, timeout=timeout, check=False, env=env
    )


def test_central_create_key_prints_a_key_once_and_stores_its_hash(postgres_db: PostgresService) -> None:
    env = {"FACEGATE_DATABASE_URL": postgres_db.dsn, "PATH": "/usr/bin:/bin"}
    proc = _run(["central", "create-key", "--scope", "operator", "--name", "ci"], env)
    assert proc.returncode == 0, proc.stderr
    key = proc.stdout.strip()
    prefix, secret = parse_api_key(key)
    with psycopg.connect(postgres_db.dsn) as conn:
        row = conn.execute(
            "SELECT scope, name, secret_hash FROM api_keys WHERE prefix = %s", (prefix,)
        ).fetchone()
        audit = conn.execute("SELECT actor, action, target_id FROM audit_log").fetchall()
    assert row is not None and row[:2] == ("operator", "ci")
    assert secret not in row[2] and verify_secret(secret, row[2])
    assert audit == [("cli", "api_key.create", prefix)]


def test_central_create_key_for_an_unknown_site_exits_3(postgres_db: PostgresService) -> None:
    env = {"FACEGATE_DATABASE_URL": postgres_db.dsn, "PATH": "/usr/bin:/bin"}
    proc = _run(["central", "create-key", "--site", "nowhere"], env)
    assert proc.returncode == 3
    assert "nowhere" in proc.stderr


def test_central_serve_without_settings_exits_3_naming_the_variable(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "FACEGATE_STORAGE_DIR": str(tmp_path), "FACEGATE_SECRET_KEY": SECRET}
    proc = _run(["central", "serve"], env)
    assert proc.returncode == 3
    assert "FACEGATE_DATABASE_URL" in proc.stderr


def test_central_serve_refuses_several_workers_sharing_one_mqtt_client_id(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "FACEGATE_DATABASE_URL": "postgresql://127.0.0.1:1/none",
        "FACEGATE_STORAGE_DIR": str(tmp_path),
        "FACEGATE_SECRET_KEY": SECRET,
        "FACEGATE_MQTT_URL": "mqtt://127.0.0.1:1883",
    }
    proc = _run(["central", "serve", "--workers", "2"], env)
    assert proc.returncode == 3
    assert "--workers" in proc.stderr and "FACEGATE_MQTT_USERNAME" in proc.stderr


def test_central_serve_answers_stops_on_sigterm_and_logs_no_secret(
    postgres_db: PostgresService, tmp_path: Path, model_dir: Path
) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "FACEGATE_DATABASE_URL": postgres_db.dsn,
        "FACEGATE_SECRET_KEY": SECRET,
        "FACEGATE_STORAGE_DIR": str(tmp_path / "objects"),
        "FACEGATE_MODELS": str(model_dir),
        "FACEGATE_ENROLL_WORKERS": "1",
    }
    key = _run(["central", "create-key"], env).stdout.strip()
    port, metrics_port = free_port(), free_port()
    env["FACEGATE_METRICS_PORT"] = str(metrics_port)
    proc = subprocess.Popen(
        [FACEGATE, "central", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "central did not answer /health within 90 s"
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        assert httpx.get(f"{base}/ready", timeout=10).json()["status"] == "ready"
        keys = httpx.get(f"{base}/api/v1/auth/keys", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert keys.status_code == 200
        internal = f"http://127.0.0.1:{metrics_port}"
        assert httpx.get(f"{base}/metrics", timeout=10).status_code == 404  # only on the metrics port
        assert "facegate_http_requests_total" in httpx.get(f"{internal}/metrics", timeout=10).text
        assert httpx.get(f"{internal}/ready", timeout=10).status_code == 200
        assert (
            httpx.get(f"{internal}/api/v1/auth/keys", headers={"Authorization": f"Bearer {key}"}).status_code
            == 404
        )
        token = httpx.post(f"{base}/api/v1/auth/token", headers={"Authorization": f"Bearer {key}"}).json()
        for credential in (key, token["access_token"]):  # uvicorn logs the WebSocket line with its query
            with websocket_connect(
                f"ws://127.0.0.1:{port}/ws/events?token={credential}&site=x", open_timeout=10
            ):
                pass
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    # uvicorn shuts down gracefully, then re-raises the signal (systemd counts SIGTERM as success)
    assert proc.returncode in {0, -signal.SIGTERM}, stderr[-2000:]
    assert "Application shutdown complete." in stderr
    assert '"event": "request"' in stderr  # JSON access log lines
    assert "/ws/events?token=***&site=x" in stderr  # the line was written, masked
    for secret in (key, key.rpartition("_")[2], token["access_token"]):
        assert secret not in stderr
