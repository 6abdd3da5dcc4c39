"""The central app: start-up over real services, operations routes, auth flow, errors, rate limits."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from central.settings import CentralSettings
from central.storage import FileSettings
from devtools.services import PostgresService
from tests.support.central_app import SECRET, Central, make_settings, start_central


def test_app_health_answers_without_credentials(central: Central) -> None:
    response = central.client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["x-request-id"]


def test_app_ready_checks_database_storage_and_redis(central: Central) -> None:
    response = central.client.get("/ready")
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"database": "ok", "storage": "ok", "redis": "ok"}


def test_app_ready_reports_an_unreachable_broker_without_names_or_addresses(
    central_settings: CentralSettings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = replace(central_settings, mqtt_url="mqtt://central-user:pw@127.0.0.1:1")
    for central in start_central(settings):
        caplog.clear()
        response = central.client.get("/ready")
        assert response.status_code == 503
        assert response.json()["checks"]["broker"] == "unavailable"
        assert "127.0.0.1" not in response.text and "central-user" not in response.text
        failed = [r for r in caplog.records if r.getMessage() == "ready_check_failed"]
        assert failed and failed[0].check == "broker" and failed[0].error  # type: ignore[attr-defined]


def test_app_start_migrates_an_empty_database(central: Central) -> None:
    with central.db() as conn:
        names = [row[0] for row in conn.execute("SELECT name FROM schema_migrations ORDER BY name")]
    assert names[0].startswith("0001_")


def test_app_schema_is_openapi_with_bearer_security(central: Central) -> None:
    schema = central.client.get("/schema/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_app_request_id_is_echoed_and_in_error_bodies(central: Central) -> None:
    response = central.client.get("/api/v1/auth/keys", headers={"X-Request-ID": "abc-123"})
    assert response.status_code == 401
    assert response.headers["x-request-id"] == "abc-123"
    assert response.json()["request_id"] == "abc-123"


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "missing_credential"),
        ("Basic Zm9vOmJhcg==", "bad_scheme"),
        ("Bearer nonsense", "malformed_credential"),
        ("Bearer fg_abcdefgh_" + "A" * 43, "invalid_key"),
        ("Bearer a.b.c", "malformed_token"),
    ],
)
def test_app_bad_credentials_get_401_with_a_code(central: Central, header: str | None, code: str) -> None:
    headers = {"Authorization": header} if header else {}
    response = central.client.get("/api/v1/auth/keys", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == code
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_app_token_from_key_works_and_keeps_scope(central: Central) -> None:
    viewer = central.key("viewer")
    response = central.client.post("/api/v1/auth/token", headers=central.as_(viewer))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["scope"] == "viewer"
    token = body["access_token"]
    assert central.client.get("/api/v1/auth/keys", headers=central.as_(token)).status_code == 403
    admin_token = central.client.post("/api/v1/auth/token", headers=central.admin).json()["access_token"]
    assert central.client.get("/api/v1/auth/keys", headers=central.as_(admin_token)).status_code == 200


def test_app_token_cannot_be_renewed_with_a_token(central: Central) -> None:
    token = central.client.post("/api/v1/auth/token", headers=central.admin).json()["access_token"]
    response = central.client.post("/api/v1/auth/token", headers=central.as_(token))
    assert response.status_code == 401
    assert response.json()["code"] == "key_required"


def test_app_forged_token_is_refused(central: Central) -> None:
    token = central.client.post("/api/v1/auth/token", headers=central.admin).json()["access_token"]
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[:-2]}AA"
    response = central.client.get("/api/v1/auth/keys", headers=central.as_(forged))
    assert response.status_code == 401
    assert response.json()["code"] in {"bad_signature", "malformed_token"}


def test_app_created_key_is_shown_once_and_revocation_stops_it(central: Central) -> None:
    created = central.client.post(
        "/api/v1/auth/keys", json={"scope": "operator", "name": "ops"}, headers=central.admin
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    prefix = created.json()["info"]["prefix"]
    listed = central.client.get("/api/v1/auth/keys", headers=central.admin).json()
    assert key not in str(listed)
    assert any(item["prefix"] == prefix for item in listed)
    assert central.client.post("/api/v1/auth/token", headers=central.as_(key)).status_code == 200
    revoked = central.client.delete(f"/api/v1/auth/keys/{prefix}", headers=central.admin)
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"]
    assert central.client.post("/api/v1/auth/token", headers=central.as_(key)).status_code == 401
    with central.db() as conn:
        actions = [row[0] for row in conn.execute("SELECT action FROM audit_log ORDER BY id")]
    assert actions[-2:] == ["api_key.create", "api_key.revoke"]


def test_app_key_for_unknown_site_is_refused(central: Central) -> None:
    response = central.client.post(
        "/api/v1/auth/keys", json={"scope": "viewer", "sites": ["nowhere"]}, headers=central.admin
    )
    assert response.status_code == 422
    assert "nowhere" in response.json()["message"]


def test_app_malformed_json_gets_400_with_a_message(central: Central) -> None:
    response = central.client.post(
        "/api/v1/auth/keys",
        content=b"{not json",
        headers={**central.admin, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["message"]


def test_app_unknown_field_is_refused(central: Central) -> None:
    response = central.client.post(
        "/api/v1/auth/keys", json={"scope": "viewer", "colour": "red"}, headers=central.admin
    )
    assert response.status_code == 400
    assert "colour" in response.text


def test_app_rate_limit_answers_429_with_retry_after(central_settings: CentralSettings) -> None:
    settings = replace(central_settings, rate_limit_per_s=0.5, rate_limit_burst=3)
    for central in start_central(settings):
        codes = [central.client.get("/api/v1/auth/keys", headers=central.admin).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200]
        assert codes[3] == 429
        refused = central.client.get("/api/v1/auth/keys", headers=central.admin)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["code"] == "rate_limited"


def test_app_metrics_count_requests_per_route(central: Central) -> None:
    central.client.get("/health")
    central.client.get("/api/v1/auth/keys", headers=central.admin)
    text = central.client.get("/metrics").text
    assert 'facegate_http_requests_total{method="GET",route="/health",status="200"}' in text
    assert 'route="/api/v1/auth/keys"' in text
    assert "facegate_db_pool_connections" in text


@pytest.fixture
def file_central(postgres_db: PostgresService, tmp_path: Path, model_dir: Path) -> Iterator[Central]:
    storage = FileSettings(root=tmp_path / "objects", secret_key=SECRET)
    yield from start_central(make_settings(postgres_db, storage, model_dir))


def test_app_runs_on_the_filesystem_store_without_redis(file_central: Central) -> None:
    response = file_central.client.get("/ready")
    assert response.status_code == 200, response.text
    assert set(response.json()["checks"]) == {"database", "storage"}


def test_app_settings_from_env_name_the_missing_variable(tmp_path: Path) -> None:
    from common.errors import ConfigError

    with pytest.raises(ConfigError, match="FACEGATE_DATABASE_URL"):
        CentralSettings.from_env({"FACEGATE_STORAGE_DIR": str(tmp_path), "FACEGATE_SECRET_KEY": SECRET})
    with pytest.raises(ConfigError, match="FACEGATE_S3_ENDPOINT"):
        CentralSettings.from_env({"FACEGATE_DATABASE_URL": "postgresql://x/y", "FACEGATE_SECRET_KEY": SECRET})
    with pytest.raises(ConfigError, match="FACEGATE_DB_POOL_MAX"):
        CentralSettings.from_env(
            {
                "FACEGATE_STORAGE_DIR": str(tmp_path),
                "FACEGATE_SECRET_KEY": SECRET,
                "FACEGATE_DATABASE_URL": "postgresql://x/y",
                "FACEGATE_DB_POOL_MAX": "lots",
            }
        )
