"""Short-lived JWTs (RFC 7519) through PyJWT: HS256 only, every time claim required and checked.

The algorithm is pinned on both sides: tokens are signed with HS256 and `jwt.decode` is given
`algorithms=["HS256"]`, so "none", RS256 (with the secret as a "public key") and every other algorithm
are refused. `sub`, `scope`, `iat`, `nbf`, `exp` and `jti` are required; exp, nbf and iat are checked
with a small leeway for clock skew between replicas. Anything PyJWT cannot read (bad base64, non-ASCII,
non-JSON, wrong claim types) is an AuthError (401), never a 500.
"""

from __future__ import annotations

import secrets
import time

import jwt
import msgspec
from jwt.types import Options

from central.auth.errors import AuthError
from common.errors import ConfigError

ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32
"""RFC 7518 3.2: an HS256 key must be at least as long as the hash output."""
MAX_TOKEN_CHARS = 8192
DEFAULT_LEEWAY_S = 10.0
"""Clock skew tolerated between replicas for exp, nbf and iat."""
REQUIRED_CLAIMS = ("sub", "scope", "iat", "nbf", "exp", "jti")


class TokenClaims(msgspec.Struct, frozen=True):
    """Claims of an access token. `sub` is the API key prefix; `sites` empty means every site."""

    sub: str
    scope: str
    sites: tuple[str, ...] = ()
    iat: int = 0
    exp: int = 0
    jti: str = ""
    nbf: int | None = None


def issue_token(claims: TokenClaims, secret: str | bytes, ttl_s: int, *, now: float | None = None) -> str:
    """Sign `claims` with iat = now, nbf = now (unless later), exp = now + ttl_s and a fresh jti."""
    if ttl_s <= 0:
        raise ValueError(f"ttl_s must be positive, got {ttl_s}")
    issued = int(time.time() if now is None else now)
    claims = msgspec.structs.replace(
        claims,
        iat=issued,
        nbf=max(issued, claims.nbf or 0),
        exp=issued + ttl_s,
        jti=claims.jti or secrets.token_urlsafe(16),
    )
    return jwt.encode(msgspec.to_builtins(claims), _key(secret), algorithm=ALGORITHM)


def verify_token(
    token: str, secret: str | bytes, now: float | None = None, *, leeway_s: float = DEFAULT_LEEWAY_S
) -> TokenClaims:
    """The token's claims if it is well formed, HS256, correctly signed and valid at `now`; else AuthError."""
    key = _key(secret)
    if len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
        raise AuthError("malformed_token", "token is not a JWT: expected three base64url parts joined by '.'")
    try:
        payload = _decode(token, key, now, leeway_s)
        return msgspec.convert(payload, TokenClaims)
    except msgspec.ValidationError as err:
        raise AuthError("malformed_token", f"token payload is not valid: {err}") from err


def _decode(token: str, key: bytes, now: float | None, leeway_s: float) -> dict[str, object]:
    # PyJWT checks exp, nbf and iat against its own clock; a caller's `now` (tests) is checked below
    real_clock = now is None
    options: Options = {
        "require": list(REQUIRED_CLAIMS),
        "verify_exp": real_clock,
        "verify_nbf": real_clock,
        "verify_iat": real_clock,
        "enforce_minimum_key_length": True,
    }
    try:
        payload = jwt.decode(token, key, algorithms=[ALGORITHM], options=options, leeway=leeway_s)
        return _checked_times(payload, time.time() if now is None else now, leeway_s)
    except jwt.InvalidAlgorithmError as err:
        raise AuthError("wrong_alg", f"token algorithm is not accepted ({err}); only {ALGORITHM} is") from err
    except jwt.InvalidSignatureError as err:
        raise AuthError("bad_signature", "token signature does not match; request a new token") from err
    except jwt.ExpiredSignatureError as err:
        raise AuthError("expired", "token has expired; request a new one at /api/v1/auth/token") from err
    except jwt.ImmatureSignatureError as err:
        raise AuthError(
            "not_yet_valid", "token is not valid yet; check the clocks of client and server"
        ) from err
    except jwt.InvalidTokenError as err:  # DecodeError, MissingRequiredClaimError, bad claim types
        raise AuthError("malformed_token", f"token is not valid: {err}") from err


def _checked_times(payload: dict[str, object], now: float, leeway_s: float) -> dict[str, object]:
    """exp, nbf and iat against the caller's `now` (PyJWT checked them against its own clock, widened)."""
    exp, nbf, iat = payload.get("exp"), payload.get("nbf"), payload.get("iat")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (exp, nbf, iat)):
        raise jwt.DecodeError("exp, nbf and iat must be integers")
    assert isinstance(exp, int) and isinstance(nbf, int) and isinstance(iat, int)
    if now >= exp + leeway_s:
        raise jwt.ExpiredSignatureError("Signature has expired")
    if now + leeway_s < max(nbf, iat):
        raise jwt.ImmatureSignatureError("The token is not yet valid")
    return payload


def _key(secret: str | bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else secret
    if len(key) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"FACEGATE_SECRET_KEY must be at least {MIN_SECRET_BYTES} bytes for HS256 "
            f"(got {len(key)}); generate one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    return key
