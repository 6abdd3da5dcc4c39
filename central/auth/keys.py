"""API keys and edge API credentials: `fg_<prefix>_<secret>`; only a PBKDF2-SHA256 hash of the secret is kept.

The prefix (8 chars of [a-z0-9]) is the lookup id and is stored in clear; the secret (32 random bytes,
url-safe base64, 43 chars) is shown once. The stored hash is self-describing:
`pbkdf2_sha256$<iterations>$<salt b64>$<hash b64>` (standard base64, 16-byte salt, 32-byte hash).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from central.auth.errors import AuthError, HashFormatError
from common.encoding import EncodingError, b64, b64_decode

KEY_TAG = "fg"
PREFIX_LENGTH = 8
SECRET_BYTES = 32
HASH_ALGORITHM = "pbkdf2_sha256"
MIN_ITERATIONS = 100_000
"""Floor for stored hashes; ~40 ms per verification on a 2-core dev box (keep it under ~50 ms)."""
DEFAULT_ITERATIONS = MIN_ITERATIONS
MAX_ITERATIONS = 2_000_000
"""Refused above this, so a corrupted row cannot make one verification take seconds."""
SALT_BYTES = 16
HASH_BYTES = 32

_PREFIX_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_PREFIX_RE = re.compile(rf"[a-z0-9]{{{PREFIX_LENGTH}}}")
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{43}")  # token_urlsafe(32): 43 chars, no padding
_KEY_FORMAT_HINT = (
    f"expected {KEY_TAG}_<8 chars a-z0-9>_<43 chars A-Za-z0-9_->, as printed when it was created"
)


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A freshly made key. `display` is what the user gets, once; store `prefix` and hash_secret(secret)."""

    prefix: str
    secret: str
    display: str

    def __repr__(self) -> str:  # never put the secret into logs or tracebacks
        return f"IssuedKey(prefix={self.prefix!r}, secret='***')"


def new_api_key() -> IssuedKey:
    """A new random key: ~41 bits of prefix (lookup id, not secret) and 256 bits of secret."""
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return IssuedKey(prefix=prefix, secret=secret, display=f"{KEY_TAG}_{prefix}_{secret}")


def parse_api_key(text: str) -> tuple[str, str]:
    """Split a presented key into (prefix, secret); AuthError("malformed_key") if it cannot be one of ours."""
    tag, sep1, rest = text.strip().partition("_")
    prefix, sep2, secret = rest.partition("_")  # the prefix has no "_", the secret may contain some
    if tag != KEY_TAG or not sep1 or not sep2:
        raise AuthError("malformed_key", f"not a Facegate API key: {_KEY_FORMAT_HINT}")
    if not _PREFIX_RE.fullmatch(prefix) or not _SECRET_RE.fullmatch(secret):
        raise AuthError("malformed_key", f"malformed Facegate API key: {_KEY_FORMAT_HINT}")
    return prefix, secret


def hash_secret(secret: str, *, iterations: int = DEFAULT_ITERATIONS) -> str:
    """`pbkdf2_sha256$<iterations>$<salt b64>$<hash b64>` with a fresh 16-byte salt."""
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"iterations must be in [{MIN_ITERATIONS}, {MAX_ITERATIONS}], got {iterations}")
    salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, iterations, HASH_BYTES)
    return f"{HASH_ALGORITHM}${iterations}${b64(salt)}${b64(digest)}"


def verify_secret(secret: str, stored: str) -> bool:
    """Whether `secret` matches `stored` (constant-time compare); HashFormatError if `stored` is not ours."""
    iterations, salt, expected = parse_hash(stored)
    actual = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, iterations, len(expected))
    return hmac.compare_digest(actual, expected)


def parse_hash(stored: str) -> tuple[int, bytes, bytes]:
    """(iterations, salt, hash) of a stored `pbkdf2_sha256$...` value."""
    parts = stored.split("$")
    if len(parts) != 4 or parts[0] != HASH_ALGORITHM:
        raise HashFormatError(f"stored key hash is not {HASH_ALGORITHM}$<iterations>$<salt>$<hash>")
    if not parts[1].isdigit() or not MIN_ITERATIONS <= int(parts[1]) <= MAX_ITERATIONS:
        raise HashFormatError(f"stored key hash has iterations outside [{MIN_ITERATIONS}, {MAX_ITERATIONS}]")
    try:
        salt = b64_decode(parts[2])
        expected = b64_decode(parts[3])
    except EncodingError as err:
        raise HashFormatError(f"stored key hash has invalid base64: {err}") from err
    if len(salt) < 8 or len(expected) < 16:
        raise HashFormatError("stored key hash has a salt or digest that is too short")
    return int(parts[1]), salt, expected
