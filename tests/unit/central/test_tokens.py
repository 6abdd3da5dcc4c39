"""Central auth: short-lived tokens and scopes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import msgspec
import pytest

from central.auth import (
    AuthError,
    Forbidden,
    Principal,
    Scope,
    TokenClaims,
    issue_token,
    require,
    require_edge,
    verify_token,
)
from common.errors import ConfigError

SECRET = "test-secret-key-that-is-long-enough-0123456789"

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
        verify_token(_token(), SECRET, NOW + 300 + 11)
    assert info.value.reason == "expired"


def test_token_within_leeway_after_exp_is_accepted() -> None:
    assert verify_token(_token(), SECRET, NOW + 300 + 9).sub == "abcdefgh"


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


def _signed(payload: dict[str, object], alg: str = "HS256") -> str:
    header = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = _b64(json.dumps(payload, ensure_ascii=False).encode())
    signature = _b64(hmac.new(SECRET.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest())
    return f"{header}.{body}.{signature}"


_FULL = {
    "sub": "abcdefgh",
    "scope": "viewer",
    "iat": int(NOW),
    "nbf": int(NOW),
    "exp": int(NOW) + 60,
    "jti": "j",
}


@pytest.mark.parametrize("missing", ["exp", "iat", "nbf", "sub", "scope", "jti"])
def test_token_signed_without_a_required_claim_is_malformed(missing: str) -> None:
    payload = {k: v for k, v in _FULL.items() if k != missing}
    with pytest.raises(AuthError) as info:
        verify_token(_signed(payload), SECRET, NOW)
    assert info.value.reason == "malformed_token"


@pytest.mark.parametrize(
    "token",
    [
        "é.é.é",
        _b64(b'{"alg": "HS256"}') + ".ü" + _b64(b"x") + ".abc",
        _b64(b"\xff\xfe") + "." + _b64(b"\xff") + ".abc",
        "\u0000.\u0000.\u0000",
    ],
)
def test_token_non_ascii_or_binary_garbage_is_malformed_not_a_crash(token: str) -> None:
    with pytest.raises(AuthError) as info:
        verify_token(token, SECRET, NOW)
    assert info.value.reason == "malformed_token"


def test_token_signed_non_ascii_claims_are_read_or_refused_cleanly() -> None:
    claims = verify_token(_signed({**_FULL, "sub": "zoë-☃"}), SECRET, NOW)
    assert claims.sub == "zoë-☃"


def test_token_real_clock_expired_token_is_refused() -> None:
    token = issue_token(TokenClaims(sub="abcdefgh", scope="viewer"), SECRET, 5, now=time.time() - 60)
    with pytest.raises(AuthError) as info:
        verify_token(token, SECRET)
    assert info.value.reason == "expired"
    assert verify_token(issue_token(TokenClaims(sub="a", scope="viewer"), SECRET, 60), SECRET).sub == "a"


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
