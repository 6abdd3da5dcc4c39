"""Central auth: API keys, Mosquitto hashes, JWTs, rate limits, the key routes (docs/central-auth.md).

`Principal`, `Scope` and the scope checks live in central/principal.py and `Forbidden` in
central/errors.py (every domain uses them); they are re-exported here with the auth primitives.
"""

from central.auth.errors import AuthError, HashFormatError, RateLimitError
from central.auth.keys import IssuedKey, hash_secret, new_api_key, parse_api_key, verify_secret
from central.auth.passwords import mosquitto_hash, password_file_line, verify_mosquitto
from central.auth.ratelimit import (
    Decision,
    LocalRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    make_rate_limiter,
)
from central.auth.tokens import TokenClaims, issue_token, verify_token
from central.errors import Forbidden
from central.principal import Principal, Scope, require, require_edge, require_scope

__all__ = [
    "AuthError",
    "Decision",
    "Forbidden",
    "HashFormatError",
    "IssuedKey",
    "LocalRateLimiter",
    "Principal",
    "RateLimitError",
    "RateLimiter",
    "RedisRateLimiter",
    "Scope",
    "TokenClaims",
    "hash_secret",
    "issue_token",
    "make_rate_limiter",
    "mosquitto_hash",
    "new_api_key",
    "parse_api_key",
    "password_file_line",
    "require",
    "require_edge",
    "require_scope",
    "verify_mosquitto",
    "verify_secret",
    "verify_token",
]
