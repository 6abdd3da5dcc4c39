"""Edge credentials: a broker login for Mosquitto and an API credential for central's HTTP API.

Both are random 256-bit secrets returned once; central stores only `broker_password_hash` (Mosquitto's
`$7$` PBKDF2-SHA512 format, so the broker's password file can be written from the database) and
`api_key_prefix` + `api_secret_hash` (the API-key format of central/auth/keys.py).

The broker username is `{site}/{edge}`: unambiguous (ids never contain `/`), free of the `+` and `#`
that Mosquitto refuses in usernames under pattern ACLs, and it makes the edge's own topic prefix
`facegate/v1/%u/` in a Mosquitto `pattern` ACL line.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from central.auth import IssuedKey, hash_secret, mosquitto_hash, new_api_key
from common.topics import PREFIX, segment

BROKER_PASSWORD_BYTES = 32


def broker_username(site: str, edge: str) -> str:
    """The edge's MQTT username, `{site}/{edge}`."""
    return f"{segment(site, 'site')}/{segment(edge, 'edge')}"


def topic_prefix(site: str, edge: str) -> str:
    """`facegate/v1/{site}/{edge}/`: every topic the edge publishes starts with it."""
    return f"{PREFIX}/{broker_username(site, edge)}/"


@dataclass(frozen=True, slots=True)
class IssuedCredentials:
    """Fresh secrets and their hashes: store the hashes, return the secrets once."""

    broker_password: str
    broker_password_hash: str
    api_key: IssuedKey
    api_secret_hash: str

    def __repr__(self) -> str:  # never put secrets into logs or tracebacks
        return f"IssuedCredentials(api_key_prefix={self.api_key.prefix!r}, secrets='***')"


def issue_credentials() -> IssuedCredentials:
    """New broker password and API credential with their hashes (about 40 ms of hashing: call it off
    the event loop)."""
    password = secrets.token_urlsafe(BROKER_PASSWORD_BYTES)
    key = new_api_key()
    return IssuedCredentials(password, mosquitto_hash(password), key, hash_secret(key.secret))
