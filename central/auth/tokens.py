"""Short-lived JWTs (RFC 7519), HS256 only, built on hmac/hashlib/base64.

A token is `<header>.<payload>.<signature>`, each part base64url without padding. The header must say
`"alg": "HS256"`; "none" and every other algorithm are refused before the signature is looked at.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from typing import TypeVar

import msgspec

from central.auth.errors import AuthError
from common.encoding import EncodingError, b64url, b64url_decode
from common.errors import ConfigError

ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32
"""RFC 7518 3.2: an HS256 key must be at least as long as the hash output."""
MAX_TOKEN_CHARS = 8192
DEFAULT_LEEWAY_S = 30.0
"""Clock skew tolerated between replicas for exp, nbf and iat."""

_T = TypeVar("_T")
_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*")
_HEADER = {"alg": ALGORITHM, "typ": "JWT"}


class TokenClaims(msgspec.Struct, frozen=True):
    """Claims of an access token. `sub` is the API key prefix; `sites` empty means every site."""

    sub: str
    scope: str
    sites: tuple[str, ...] = ()
    iat: int = 0
    exp: int = 0
    jti: str = ""
    nbf: int | None = None


class _Header(msgspec.Struct, frozen=True):
    alg: str
    typ: str = "JWT"


def issue_token(claims: TokenClaims, secret: str | bytes, ttl_s: int, *, now: float | None = None) -> str:
    """Sign `claims` with iat = now, exp = now + ttl_s and a fresh jti (unless one is given)."""
    if ttl_s <= 0:
        raise ValueError(f"ttl_s must be positive, got {ttl_s}")
    issued = int(time.time() if now is None else now)
    claims = msgspec.structs.replace(
        claims, iat=issued, exp=issued + ttl_s, jti=claims.jti or secrets.token_urlsafe(16)
    )
    signing_input = b64url(msgspec.json.encode(_HEADER)) + "." + b64url(msgspec.json.encode(claims))
    return signing_input + "." + b64url(_sign(signing_input, _key(secret)))


def verify_token(
    token: str, secret: str | bytes, now: float | None = None, *, leeway_s: float = DEFAULT_LEEWAY_S
) -> TokenClaims:
    """The token's claims if it is well formed, HS256, correctly signed and valid at `now`; else AuthError."""
    key = _key(secret)
    header_b64, payload_b64, signature_b64 = _split(token)
    header = _decode(header_b64, _Header, "header")
    if header.alg != ALGORITHM:
        raise AuthError("wrong_alg", f"token algorithm {header.alg!r} is not accepted; only {ALGORITHM} is")
    signature = _unb64(signature_b64, "signature")
    if not hmac.compare_digest(signature, _sign(f"{header_b64}.{payload_b64}", key)):
        raise AuthError("bad_signature", "token signature does not match; request a new token")
    claims = _decode(payload_b64, TokenClaims, "payload")
    _check_times(claims, time.time() if now is None else now, leeway_s)
    return claims


def _check_times(claims: TokenClaims, now: float, leeway_s: float) -> None:
    if now >= claims.exp + leeway_s:
        raise AuthError("expired", "token has expired; request a new one at /api/v1/auth/token")
    not_before = max(claims.iat, claims.nbf or 0)
    if now + leeway_s < not_before:
        raise AuthError("not_yet_valid", "token is not valid yet; check the clocks of client and server")


def _split(token: str) -> tuple[str, str, str]:
    parts = token.split(".")
    if len(token) > MAX_TOKEN_CHARS or len(parts) != 3:
        raise AuthError("malformed_token", "token is not a JWT: expected three base64url parts joined by '.'")
    return parts[0], parts[1], parts[2]


def _decode(part: str, kind: type[_T], what: str) -> _T:
    try:
        return msgspec.json.decode(_unb64(part, what), type=kind)
    except msgspec.DecodeError as err:  # ValidationError is a subclass
        raise AuthError("malformed_token", f"token {what} is not valid: {err}") from err


def _unb64(part: str, what: str) -> bytes:
    if not _B64URL_RE.fullmatch(part):
        raise AuthError("malformed_token", f"token {what} is not base64url")
    try:
        return b64url_decode(part)
    except EncodingError as err:
        raise AuthError("malformed_token", f"token {what} is not base64url: {err}") from err


def _sign(signing_input: str, key: bytes) -> bytes:
    return hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()


def _key(secret: str | bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else secret
    if len(key) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"FACEGATE_SECRET_KEY must be at least {MIN_SECRET_BYTES} bytes for HS256 "
            f"(got {len(key)}); generate one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    return key
