"""Failed authentications limited before PBKDF2 runs (per key prefix and per client address, in Redis), and
broken tokens answered with 401, against the real app."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from central.auth.authlimit import AuthLimiter
from central.auth.ratelimit import LocalRateLimiter
from central.errors import TooManyRequests
from devtools.services import PostgresService, RedisService, S3Service
from tests.support.central_app import Central, shared_central

KEY_BURST = 3
IP_BURST = 8


@pytest.fixture(scope="module")
def central(
    postgres_server: PostgresService, s3_server: S3Service, redis_server: RedisService, model_dir: Path
) -> Iterator[Central]:
    with shared_central(
        postgres_server,
        s3_server,
        redis_server,
        model_dir,
        key_cache_s=0.001,  # every request with a key runs PBKDF2
        auth_fail_key_burst=KEY_BURST,
        auth_fail_key_per_s=0.01,
        auth_fail_ip_burst=IP_BURST,
        auth_fail_ip_per_s=0.01,
    ) as started:
        yield started


@pytest.fixture(autouse=True)
def fresh_buckets(central: Central) -> None:
    assert central.settings.redis_url
    redis.Redis.from_url(central.settings.redis_url).flushdb()
    central.client.app.state.auth.authenticator.limiter.forget()


def _wrong(key: str) -> str:
    return key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")


def _get(central: Central, credential: str) -> int:
    return central.client.get("/api/v1/sites", headers=central.as_(credential)).status_code


def test_auth_wrong_secrets_on_a_known_prefix_are_throttled_before_verification(central: Central) -> None:
    key = central.key("viewer")
    assert [_get(central, _wrong(key)) for _ in range(KEY_BURST)] == [401] * KEY_BURST
    refused = central.client.get("/api/v1/sites", headers=central.as_(_wrong(key)))
    assert refused.status_code == 429
    assert refused.json()["code"] == "auth_throttled"
    assert "revoke the key" in refused.json()["message"]
    assert int(refused.headers["Retry-After"]) >= 1
    # Even the right secret is not looked at while the prefix is throttled: nothing is verified
    assert _get(central, key) == 429
    metrics = central.client.get("/metrics").text
    assert re.search(r'facegate_auth_failures_total\{reason="auth_throttled"\} [1-9]', metrics)


def test_auth_valid_key_is_not_slowed_by_its_own_successes(central: Central) -> None:
    key = central.key("viewer")
    assert _get(central, _wrong(key)) == 401
    assert [_get(central, key) for _ in range(4 * KEY_BURST)] == [200] * (4 * KEY_BURST)
    assert _get(central, _wrong(key)) == 401  # the successes gave back what they took


def test_auth_failures_from_one_address_on_many_prefixes_are_throttled(central: Central) -> None:
    unknown = [f"fg_{i:08d}_" + "A" * 43 for i in range(IP_BURST + 1)]
    assert [_get(central, k) for k in unknown[:IP_BURST]] == [401] * IP_BURST
    refused = central.client.get("/api/v1/sites", headers=central.as_(unknown[-1]))
    assert refused.status_code == 429
    assert "from this address" in refused.json()["message"]


def test_auth_failures_count_across_replicas_through_redis(redis_db: RedisService) -> None:
    first, second = (AuthLimiter.create(redis_db.url, 0.01, 100, 0.01, 2) for _ in range(2))
    first.check("10.0.0.1", "abcdefgh")
    second.check("10.0.0.2", "abcdefgh")
    with pytest.raises(TooManyRequests, match="too many failed authentications for this credential"):
        first.check("10.0.0.3", "abcdefgh")
    second.succeeded("10.0.0.2", "abcdefgh")
    first.check("10.0.0.3", "abcdefgh")


def test_auth_limiter_remembers_a_refusal_until_the_allowance_is_back() -> None:
    now = [1000.0]
    limiter = AuthLimiter(LocalRateLimiter(1.0, 100), LocalRateLimiter(0.5, 1), clock=lambda: now[0])
    limiter.refuse_known("10.0.0.1", "abcdefgh")  # nothing known yet
    limiter.check("10.0.0.1", "abcdefgh")
    with pytest.raises(TooManyRequests):
        limiter.check("10.0.0.1", "abcdefgh")
    with pytest.raises(TooManyRequests, match="retry in 2 s"):
        limiter.refuse_known("10.0.0.2", "abcdefgh")  # answered from memory, no limiter touched
    limiter.refuse_known("10.0.0.1", "otherkey")
    now[0] += 2.0
    limiter.refuse_known("10.0.0.1", "abcdefgh")
    limiter.check("10.0.0.1", "abcdefgh")


@pytest.mark.parametrize(
    "token",
    [
        "eyJhbGciOiJIUzI1NiJ9.\u00fc\u00fc\u00fc.abc",
        "\u00e9.\u00e9.\u00e9",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOjF9.\u2603",
    ],
)
def test_auth_non_ascii_token_over_http_is_401_not_500(central: Central, token: str) -> None:
    response = central.client.get("/api/v1/sites", headers={b"Authorization": ("Bearer " + token).encode()})
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "malformed_token"


def test_auth_key_prefixes_on_enrollment_jobs_are_shown_to_admins_only(central: Central) -> None:
    job_id = uuid.uuid4()
    with central.db() as conn:
        conn.execute(
            "INSERT INTO enrollment_jobs (id, status, created_by, object_key, total, people, finished_at)"
            " VALUES (%s, 'done', 'key:abcdefgh', %s, 1, 1, now())",
            (job_id, f"jobs/{job_id}.zip"),
        )
    for scope, shown in [("viewer", "key"), ("operator", "key"), ("admin", "key:abcdefgh")]:
        headers = central.as_(central.key(scope))
        one = central.client.get(f"/api/v1/enrollment-jobs/{job_id}", headers=headers).json()
        listed = central.client.get("/api/v1/enrollment-jobs", headers=headers).json()["items"]
        assert (one["created_by"], listed[0]["created_by"]) == (shown, shown), scope
