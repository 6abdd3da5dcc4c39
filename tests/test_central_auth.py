"""central.auth: API keys, Mosquitto hashes (against the real mosquitto_passwd and broker), JWTs, scopes and
rate limiting (in process and in a real Redis, including Redis going away)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import msgspec
import paho.mqtt.client as mqtt
import pytest
import redis
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from central.auth import (
    AuthError,
    Forbidden,
    HashFormatError,
    LocalRateLimiter,
    Principal,
    RateLimiter,
    RedisRateLimiter,
    Scope,
    TokenClaims,
    hash_secret,
    issue_token,
    mosquitto_hash,
    new_api_key,
    parse_api_key,
    password_file_line,
    require,
    require_edge,
    verify_mosquitto,
    verify_secret,
    verify_token,
)
from central.auth.keys import MIN_ITERATIONS, parse_hash
from central.auth.passwords import parse_mosquitto_hash
from common.errors import ConfigError
from tests.services import MosquittoFactory, MqttBroker, RedisFactory, RedisService

SECRET = "test-secret-key-that-is-long-enough-0123456789"

# --- API keys -----------------------------------------------------------------------------------------


def test_api_key_new_then_parse_and_verify_round_trips() -> None:
    key = new_api_key()
    stored = hash_secret(key.secret)
    assert key.display == f"fg_{key.prefix}_{key.secret}"
    assert parse_api_key(key.display) == (key.prefix, key.secret)
    assert verify_secret(key.secret, stored)
    assert key.secret not in repr(key)


def test_api_key_wrong_secret_does_not_verify() -> None:
    stored = hash_secret(new_api_key().secret)
    assert not verify_secret(new_api_key().secret, stored)


def test_api_key_secret_has_at_least_32_bytes_of_entropy() -> None:
    keys = [new_api_key() for _ in range(20)]
    assert all(len(base64.urlsafe_b64decode(k.secret + "=")) >= 32 for k in keys)
    assert all(re.fullmatch(r"[a-z0-9]{8}", k.prefix) for k in keys)
    assert len({k.secret for k in keys}) == 20


@pytest.mark.parametrize(
    "text",
    [
        "",
        "fg_",
        "fg_abcdefgh",
        "fg_abcdefgh_",
        "xx_abcdefgh_" + "a" * 43,
        "fg_ABCDEFGH_" + "a" * 43,
        "fg_abcdefg_" + "a" * 43,
        "fg_abcdefgh_" + "a" * 42,
        "fg_abcdefgh_" + "a" * 42 + "=",
        "Bearer fg_abcdefgh_" + "a" * 43,
    ],
)
def test_api_key_malformed_raises_auth_error(text: str) -> None:
    with pytest.raises(AuthError, match="fg_<8 chars") as info:
        parse_api_key(text)
    assert info.value.reason == "malformed_key"


def test_api_key_secret_with_underscores_parses() -> None:
    secret = "_" * 10 + "a" * 33
    assert parse_api_key(f"fg_abcdefgh_{secret}") == ("abcdefgh", secret)


def test_hash_secret_format_is_self_describing_with_minimum_iterations() -> None:
    stored = hash_secret("s3cret")
    assert re.fullmatch(r"pbkdf2_sha256\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+", stored)
    iterations, salt, digest = parse_hash(stored)
    assert iterations >= MIN_ITERATIONS >= 100_000  # keeps verification at ~40 ms, see docs/central-auth.md
    assert (len(salt), len(digest)) == (16, 32)


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "sha1$100000$c2FsdHNhbHQ=$aGFzaA==",
        "pbkdf2_sha256$1000$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA==",
        "pbkdf2_sha256$100000$not*base64$aGFzaA==",
        "pbkdf2_sha256$abc$c2FsdHNhbHQ=$aGFzaA==",
    ],
)
def test_verify_secret_malformed_stored_hash_raises(stored: str) -> None:
    with pytest.raises(HashFormatError):
        verify_secret("anything", stored)


# --- Mosquitto password hashes ------------------------------------------------------------------------


def _mosquitto_passwd() -> str:
    binary = shutil.which("mosquitto_passwd") or shutil.which("mosquitto_passwd", path="/usr/bin:/usr/sbin")
    if binary is None:
        pytest.skip("mosquitto_passwd not installed; run scripts/ensure-services.sh")
    return binary


def test_verify_mosquitto_accepts_hash_made_by_mosquitto_passwd(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    subprocess.run([_mosquitto_passwd(), "-c", "-b", str(path), "edge-1", "pa:ss wörd"], check=True)
    username, stored = path.read_text().strip().split(":", 1)
    assert username == "edge-1"
    assert stored.startswith("$7$")
    assert verify_mosquitto("pa:ss wörd", stored)
    assert not verify_mosquitto("pa:ss word", stored)


def test_mosquitto_hash_has_the_shape_mosquitto_passwd_writes(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    subprocess.run([_mosquitto_passwd(), "-c", "-b", str(path), "u", "p"], check=True)
    theirs = parse_mosquitto_hash(path.read_text().strip().split(":", 1)[1])
    ours = parse_mosquitto_hash(mosquitto_hash("p"))
    assert ours[0] == theirs[0] == 101
    assert (len(ours[1]), len(ours[2])) == (len(theirs[1]), len(theirs[2])) == (12, 64)


def test_mosquitto_hash_with_fixed_salt_is_deterministic() -> None:
    salt = bytes(range(12))
    assert mosquitto_hash("pw", salt=salt) == mosquitto_hash("pw", salt=salt)
    assert verify_mosquitto("pw", mosquitto_hash("pw", salt=salt, iterations=1000))


def test_verify_mosquitto_old_sha512_format_raises() -> None:
    with pytest.raises(HashFormatError, match=r"\$7\$"):
        verify_mosquitto("pw", "$6$c2FsdHNhbHRzYWx0$aGFzaA==")


@pytest.mark.parametrize("username", ["", "a:b", "line\nbreak", " padded", "#comment"])
def test_password_file_line_bad_username_raises(username: str) -> None:
    with pytest.raises(ValueError, match="password file"):
        password_file_line(username, mosquitto_hash("pw"))


def _connack(broker: MqttBroker, username: str, password: str) -> ReasonCode:
    """CONNECT with username/password; the broker's CONNACK reason code."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"fg-auth-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv311
    )
    client.username_pw_set(username, password)
    codes: list[ReasonCode] = []
    done = threading.Event()

    def on_connect(
        _c: mqtt.Client, _u: object, _f: mqtt.ConnectFlags, rc: ReasonCode, _p: Properties | None
    ) -> None:
        codes.append(rc)
        done.set()

    client.on_connect = on_connect
    client.connect(broker.host, broker.port, keepalive=10)
    client.loop_start()
    try:
        assert done.wait(5), "no CONNACK within 5 s"
    finally:
        client.disconnect()
        client.loop_stop()
    return codes[0]


def test_mosquitto_broker_accepts_our_hash_and_refuses_wrong_password(
    mosquitto_factory: MosquittoFactory, service_backend: str, tmp_path: Path
) -> None:
    if service_backend == "docker":
        pytest.skip("the password file is written on the host; a broker container cannot read it")
    path = tmp_path / "passwd"
    lines = [password_file_line("edge-a", mosquitto_hash("right-secret"))]
    lines.append(password_file_line("edge-b", mosquitto_hash("other", iterations=1000)))
    path.write_text("\n".join(lines) + "\n")
    broker = mosquitto_factory(persistence=False, extra_config=[f"password_file {path}"]).endpoint
    assert not _connack(broker, "edge-a", "right-secret").is_failure
    assert not _connack(broker, "edge-b", "other").is_failure
    assert _connack(broker, "edge-a", "wrong-secret").is_failure
    assert _connack(broker, "edge-b", "right-secret").is_failure


# --- tokens -------------------------------------------------------------------------------------------

NOW = 1_700_000_000.0


def _token() -> str:
    claims = TokenClaims(sub="abcdefgh", scope="operator", sites=("site-1",))
    return issue_token(claims, SECRET, 300, now=NOW)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(header: dict[str, object], payload: dict[str, object], signature: str = "") -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}.{signature}"


def test_token_valid_returns_claims() -> None:
    claims = verify_token(_token(), SECRET, NOW + 10)
    assert (claims.sub, claims.scope, claims.sites) == ("abcdefgh", "operator", ("site-1",))
    assert (claims.iat, claims.exp) == (int(NOW), int(NOW) + 300)
    assert len(claims.jti) >= 16


def test_token_jti_is_unique_per_issue() -> None:
    assert verify_token(_token(), SECRET, NOW).jti != verify_token(_token(), SECRET, NOW).jti


def test_token_tampered_payload_is_bad_signature() -> None:
    header, payload, signature = _token().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["scope"] = "admin"
    forged = f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"
    with pytest.raises(AuthError) as info:
        verify_token(forged, SECRET, NOW)
    assert info.value.reason == "bad_signature"


def test_token_tampered_signature_is_bad_signature() -> None:
    header, payload, signature = _token().split(".")
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    with pytest.raises(AuthError) as info:
        verify_token(f"{header}.{payload}.{flipped}", SECRET, NOW)
    assert info.value.reason == "bad_signature"


def test_token_other_secret_is_bad_signature() -> None:
    with pytest.raises(AuthError) as info:
        verify_token(_token(), SECRET + "x", NOW)
    assert info.value.reason == "bad_signature"


@pytest.mark.parametrize("alg", ["none", "None", "HS512", "RS256", ""])
def test_token_wrong_alg_is_refused(alg: str) -> None:
    payload = msgspec.json.decode(base64.urlsafe_b64decode(_token().split(".")[1] + "=="))
    with pytest.raises(AuthError, match="only HS256") as info:
        verify_token(_forge({"alg": alg, "typ": "JWT"}, payload), SECRET, NOW)
    assert info.value.reason == "wrong_alg"


def test_token_expired_is_refused() -> None:
    with pytest.raises(AuthError, match="expired") as info:
        verify_token(_token(), SECRET, NOW + 300 + 31)
    assert info.value.reason == "expired"


def test_token_within_leeway_after_exp_is_accepted() -> None:
    assert verify_token(_token(), SECRET, NOW + 300 + 29).sub == "abcdefgh"


def test_token_issued_in_future_is_not_yet_valid() -> None:
    with pytest.raises(AuthError) as info:
        verify_token(_token(), SECRET, NOW - 3600)
    assert info.value.reason == "not_yet_valid"


def test_token_future_nbf_is_not_yet_valid() -> None:
    claims = TokenClaims(sub="abcdefgh", scope="viewer", nbf=int(NOW) + 3600)
    with pytest.raises(AuthError) as info:
        verify_token(issue_token(claims, SECRET, 7200, now=NOW), SECRET, NOW)
    assert info.value.reason == "not_yet_valid"


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b", "a.b.c.d", "!!.e30.abc", _b64(b"not json") + ".e30.abc", "x" * 9000],
)
def test_token_malformed_is_refused(token: str) -> None:
    with pytest.raises(AuthError) as info:
        verify_token(token, SECRET, NOW)
    assert info.value.reason == "malformed_token"


def test_token_signed_payload_with_wrong_types_is_malformed() -> None:
    header = _b64(json.dumps({"alg": "HS256"}).encode())
    payload = _b64(json.dumps({"sub": 5, "scope": "admin"}).encode())
    signature = _b64(hmac.new(SECRET.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest())
    with pytest.raises(AuthError) as info:
        verify_token(f"{header}.{payload}.{signature}", SECRET, NOW)
    assert info.value.reason == "malformed_token"


def test_token_short_secret_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="FACEGATE_SECRET_KEY"):
        issue_token(TokenClaims(sub="a", scope="viewer"), "short", 60)


# --- scopes -------------------------------------------------------------------------------------------

_ORDER = [Scope.VIEWER, Scope.OPERATOR, Scope.ADMIN]


@pytest.mark.parametrize("held", _ORDER)
@pytest.mark.parametrize("needed", _ORDER)
def test_require_scope_matrix_allows_only_equal_or_higher(held: Scope, needed: Scope) -> None:
    principal = Principal(kind="key", id="abcdefgh", scope=held)
    if _ORDER.index(held) >= _ORDER.index(needed):
        require(principal, needed, "site-1")
        require(principal, needed, None)
    else:
        with pytest.raises(Forbidden) as info:
            require(principal, needed, "site-1")
        assert info.value.reason == "insufficient_scope"


def test_require_site_restricted_key_only_its_sites() -> None:
    principal = Principal(kind="key", id="abcdefgh", scope=Scope.ADMIN, sites=("site-1", "site-2"))
    require(principal, Scope.VIEWER, "site-2")
    with pytest.raises(Forbidden) as info:
        require(principal, Scope.VIEWER, "site-3")
    assert info.value.reason == "site_not_allowed"


def test_require_site_restricted_key_on_cross_site_operation_is_forbidden() -> None:
    principal = Principal(kind="key", id="abcdefgh", scope=Scope.ADMIN, sites=("site-1",))
    with pytest.raises(Forbidden) as info:
        require(principal, Scope.VIEWER, None)
    assert info.value.reason == "site_restricted"
    assert principal.allows_site("site-1") and not principal.allows_site("site-2")


def test_require_edge_principal_on_api_endpoint_is_forbidden() -> None:
    edge = Principal(kind="edge", id="edge-1", scope=Scope.EDGE, sites=("site-1",))
    with pytest.raises(Forbidden) as info:
        require(edge, Scope.VIEWER, "site-1")
    assert info.value.reason == "edge_only"


def test_require_edge_own_edge_allowed_other_edge_or_site_forbidden() -> None:
    edge = Principal(kind="edge", id="edge-1", scope=Scope.EDGE, sites=("site-1",))
    require_edge(edge, "site-1", "edge-1")
    for site, other in [("site-1", "edge-2"), ("site-2", "edge-1")]:
        with pytest.raises(Forbidden) as info:
            require_edge(edge, site, other)
        assert info.value.reason == "other_edge"


@pytest.mark.parametrize(
    ("scope", "sites", "allowed"),
    [
        (Scope.ADMIN, (), True),
        (Scope.ADMIN, ("site-1",), True),
        (Scope.ADMIN, ("site-2",), False),
        (Scope.OPERATOR, (), False),
        (Scope.VIEWER, (), False),
    ],
)
def test_require_edge_api_keys_only_admin_on_that_site(
    scope: Scope, sites: tuple[str, ...], allowed: bool
) -> None:
    key = Principal(kind="key", id="abcdefgh", scope=scope, sites=sites)
    if allowed:
        require_edge(key, "site-1", "edge-1")
    else:
        with pytest.raises(Forbidden):
            require_edge(key, "site-1", "edge-1")


def test_principal_inconsistent_kind_and_scope_raises() -> None:
    with pytest.raises(ValueError, match="edge principal"):
        Principal(kind="edge", id="edge-1", scope=Scope.ADMIN, sites=("site-1",))
    with pytest.raises(ValueError, match="edge principal"):
        Principal(kind="edge", id="edge-1", scope=Scope.EDGE)
    with pytest.raises(ValueError, match="API key"):
        Principal(kind="key", id="abcdefgh", scope=Scope.EDGE)


def test_forbidden_and_auth_error_map_to_403_and_401() -> None:
    assert (AuthError.status_code, Forbidden.status_code) == (401, 403)


# --- rate limiting ------------------------------------------------------------------------------------

MakeLimiter = Callable[[float, int], RateLimiter]


@pytest.fixture(params=["local", "redis"])
def make_limiter(request: pytest.FixtureRequest) -> MakeLimiter:
    if request.param == "local":
        return LocalRateLimiter
    service: RedisService = request.getfixturevalue("redis_db")

    def make(rate: float, burst: int) -> RateLimiter:
        return RedisRateLimiter.from_url(service.url, rate, burst, key_prefix=service.key_prefix + "rl:")

    return make


def test_rate_limit_burst_then_refused_with_retry_after(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(2.0, 3)
    decisions = [limiter.hit("k", NOW) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[3].retry_after_s == pytest.approx(0.5)
    assert decisions[0].retry_after_s == 0.0


def test_rate_limit_refills_after_time(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(1.0, 2)
    assert [limiter.hit("k", NOW).allowed for _ in range(3)] == [True, True, False]
    half = limiter.hit("k", NOW + 0.5)
    assert not half.allowed and half.retry_after_s == pytest.approx(0.5)
    assert limiter.hit("k", NOW + 1.0).allowed
    assert not limiter.hit("k", NOW + 1.0).allowed
    full = limiter.hit("k", NOW + 100.0)  # refill is capped at the burst
    assert full.allowed and full.remaining == 1


def test_rate_limit_fractional_rate_retry_after(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(0.25, 1)
    assert limiter.hit("k", NOW).allowed
    assert limiter.hit("k", NOW + 1.0).retry_after_s == pytest.approx(3.0)
    assert limiter.hit("k", NOW + 4.0).allowed


def test_rate_limit_separate_keys_are_independent(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(1.0, 1)
    assert limiter.hit("a", NOW).allowed
    assert not limiter.hit("a", NOW).allowed
    assert limiter.hit("b", NOW).allowed


def test_rate_limit_clock_going_back_does_not_refill(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(1.0, 1)
    assert limiter.hit("k", NOW).allowed
    assert not limiter.hit("k", NOW - 50.0).allowed
    assert limiter.hit("k", NOW + 1.0).allowed


def test_rate_limit_redis_bucket_expires(redis_db: RedisService) -> None:
    limiter = RedisRateLimiter.from_url(redis_db.url, 10.0, 5, key_prefix=redis_db.key_prefix + "rl:")
    limiter.hit("k", NOW)
    client = redis.Redis.from_url(redis_db.url)
    ttl_ms = client.pttl(redis_db.key_prefix + "rl:k")
    client.close()
    assert 0 < ttl_ms <= 1100  # one token to refill at 10/s: 100 ms, plus the 1 s margin


def test_local_rate_limit_is_thread_safe() -> None:
    limiter = LocalRateLimiter(1.0, 100)
    allowed: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(50):
            ok = limiter.hit("k", NOW).allowed
            with lock:
                allowed.append(ok)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(allowed) == 100


def test_local_rate_limit_forgets_full_buckets_past_max_keys() -> None:
    limiter = LocalRateLimiter(1.0, 1, max_keys=10)
    for i in range(10):
        limiter.hit(f"k{i}", NOW)
    assert not limiter.hit("k0", NOW).allowed
    limiter.hit("new", NOW + 5.0)  # 11 buckets: the full ones (all older ones) are dropped
    assert len(limiter) == 1


def test_rate_limit_redis_down_falls_back_to_local_and_recovers(
    redis_factory: RedisFactory, caplog: pytest.LogCaptureFixture
) -> None:
    instance = redis_factory()
    limiter = RedisRateLimiter.from_url(instance.endpoint.url, 1.0, 2, outage_retry_s=0.0)
    assert limiter.hit("k", NOW).remaining == 1  # from Redis
    instance.stop()
    with caplog.at_level(logging.INFO, logger="central.auth.ratelimit"):
        fallback = [limiter.hit("k", NOW) for _ in range(3)]  # a fresh local bucket
        assert [d.allowed for d in fallback] == [True, True, False]
        assert limiter.degraded
        instance.start()
        assert limiter.hit("other", NOW).allowed
        assert not limiter.degraded
    events = [r.getMessage() for r in caplog.records]
    assert events.count("ratelimit_redis_unavailable") == 1
    assert events.count("ratelimit_redis_recovered") == 1
