"""HMAC-signed, expiring URLs for objects of the filesystem store.

A URL looks like `{base_url}/files/{key}?expires=UNIX&sig=HEX`, where HEX is
HMAC-SHA256(K, "{key}\\n{expires}") and K = HMAC-SHA256(FACEGATE_SECRET_KEY, "facegate.files/1"), so the
same secret can serve other purposes (tokens) without one signature ever being valid for another.
The app's file route calls `verify_signed` with the decoded key and the two query parameters.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote

from central.storage.keys import validate_key
from common.errors import ConfigError

FILES_ROUTE = "/files"
_PURPOSE = b"facegate.files/1"
MIN_SECRET_BYTES = 16


def _signing_key(secret: str | bytes) -> bytes:
    raw = secret.encode() if isinstance(secret, str) else secret
    if len(raw) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"FACEGATE_SECRET_KEY: needs at least {MIN_SECRET_BYTES} bytes "
            "(generate one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    return hmac.new(raw, _PURPOSE, hashlib.sha256).digest()


def signature(secret: str | bytes, key: str, expires: int) -> str:
    """Hex HMAC-SHA256 over the key and the expiry time (UNIX seconds)."""
    message = f"{key}\n{expires}".encode()
    return hmac.new(_signing_key(secret), message, hashlib.sha256).hexdigest()


def signed_url(secret: str | bytes, key: str, expires: int, base_url: str = "") -> str:
    """`{base_url}/files/{quoted key}?expires=...&sig=...`; relative when base_url is ""."""
    validate_key(key)
    sig = signature(secret, key, expires)
    return f"{base_url.rstrip('/')}{FILES_ROUTE}/{quote(key, safe='/')}?expires={expires}&sig={sig}"


def verify_signed(
    secret: str | bytes, key: str, expires: int | str, sig: str, now: float | None = None
) -> bool:
    """True when `sig` signs (`key`, `expires`) and `now` (default: the clock) is not past `expires`.

    `expires` and `sig` may come straight from the query string: anything malformed is False, never an
    exception. The signature comparison is constant-time."""
    try:
        expires_at = int(expires)
    except (TypeError, ValueError):
        return False
    if str(expires_at) != str(expires).strip() or not isinstance(sig, str):
        return False
    expected = signature(secret, key, expires_at)
    if not hmac.compare_digest(expected.encode(), sig.strip().lower().encode()):
        return False
    return (time.time() if now is None else now) <= expires_at
