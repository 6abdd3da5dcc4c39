"""Mosquitto 2 password-file hashes (`$7$`: PBKDF2-HMAC-SHA512), so central can write the broker's file.

Format, as written by `mosquitto_passwd` 2.0 and read by the broker (verified against both in the tests):
`$7$<iterations>$<salt>$<hash>` where salt is exactly 12 random bytes and hash is the 64-byte
PBKDF2-HMAC-SHA512(password UTF-8, salt bytes, iterations), both in standard base64 with padding.
The broker reads the iteration count from each line and discards entries whose salt is not 12 bytes.
A password-file line is `<username>:<hash>`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from central.auth.errors import HashFormatError
from common.encoding import EncodingError, b64, b64_decode

MOSQUITTO_ITERATIONS = 101
"""mosquitto_passwd's default. The broker hashes on every CONNECT on its single thread, and our edge
passwords are 256-bit random secrets, so a high count would cost broker time and buy nothing."""
MAX_ITERATIONS = 1_000_000
SALT_BYTES = 12  # the broker refuses any other salt length
HASH_BYTES = 64


def mosquitto_hash(
    password: str, *, iterations: int = MOSQUITTO_ITERATIONS, salt: bytes | None = None
) -> str:
    """The `$7$...` hash of `password` with a fresh salt (or `salt`, 12 bytes, for reproducible tests)."""
    if not 1 <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"iterations must be in [1, {MAX_ITERATIONS}], got {iterations}")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    if len(salt) != SALT_BYTES:
        raise ValueError(f"Mosquitto needs a {SALT_BYTES}-byte salt, got {len(salt)} bytes")
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, HASH_BYTES)
    return f"$7${iterations}${b64(salt)}${b64(digest)}"


def verify_mosquitto(password: str, stored: str) -> bool:
    """Whether `password` matches a `$7$` hash (constant-time); HashFormatError for anything else."""
    iterations, salt, expected = parse_mosquitto_hash(stored)
    actual = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, HASH_BYTES)
    return hmac.compare_digest(actual, expected)


def parse_mosquitto_hash(stored: str) -> tuple[int, bytes, bytes]:
    """(iterations, salt, hash) of `$7$<iterations>$<salt b64>$<hash b64>`."""
    parts = stored.split("$")
    if len(parts) != 5 or parts[0] != "" or parts[1] != "7":
        raise HashFormatError("not a Mosquitto PBKDF2-SHA512 hash: expected $7$<iterations>$<salt>$<hash>")
    if not parts[2].isdigit() or not 1 <= int(parts[2]) <= MAX_ITERATIONS:
        raise HashFormatError(f"Mosquitto hash iterations must be in [1, {MAX_ITERATIONS}]")
    try:
        salt = b64_decode(parts[3])
        expected = b64_decode(parts[4])
    except EncodingError as err:
        raise HashFormatError(f"Mosquitto hash has invalid base64: {err}") from err
    if len(salt) != SALT_BYTES or len(expected) != HASH_BYTES:
        raise HashFormatError(f"Mosquitto hash needs a {SALT_BYTES}-byte salt and a {HASH_BYTES}-byte hash")
    return int(parts[2]), salt, expected


def password_file_line(username: str, password_hash: str) -> str:
    """`<username>:<hash>` without a newline; refuses names the file format cannot hold."""
    bad = [c for c in username if c == ":" or not c.isprintable()]
    if not username or bad or username != username.strip() or username.startswith("#"):
        raise ValueError(
            f"username {username!r} cannot go into a Mosquitto password file: it must be non-empty, "
            "without ':', control characters, surrounding spaces or a leading '#'"
        )
    parse_mosquitto_hash(password_hash)
    return f"{username}:{password_hash}"
