"""The console's sessions: sign in with an API key, find the session of a cookie, sign out.

A session is a random token in an HttpOnly cookie (central/console/security.py); PostgreSQL keeps its
SHA-256, the key it belongs to, its CSRF token and its expiry (central/console/repository.py). Each
request re-reads the key's scope and sites, so a scope change applies at once and a revoked key's
sessions end (revoking deletes them; the lookup also skips revoked keys).

Sign-in checks the key in exactly one place, `verify_key`: the failed-authentication limit of the API
(the "Hardening" issue) goes there, before any key hashing runs.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

from central.auth.errors import AuthError
from central.auth.keys import KEY_TAG
from central.auth.service import AuthService
from central.console import repository as repo
from central.db.pool import AsyncPool
from central.principal import Principal, Scope

log = logging.getLogger("central.console")

MAX_KEY_CHARS = 200
MAX_TOKEN_CHARS = 100


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: who it acts as, its CSRF token, when it ends."""

    principal: Principal
    csrf: str
    expires_at: datetime


class ConsoleService:
    """Sessions of one app. `ttl_s`: how long a session lasts after sign-in."""

    def __init__(self, pool: AsyncPool, auth: AuthService, *, ttl_s: int) -> None:
        self.pool = pool
        self.auth = auth
        self.ttl_s = ttl_s

    async def verify_key(self, key: str, client_ip: str | None) -> Principal:
        """The principal of an API key typed into the sign-in form by `client_ip`; AuthError (401) or
        TooManyRequests (429) otherwise. The one call sign-in makes to check a key: through the API's
        own `admit`, so failed sign-ins count against the same failed-authentication limit
        (central/auth/authlimit.py), checked before any key hashing runs."""
        key = key.strip()
        try:
            if not key.startswith(KEY_TAG + "_") or len(key) > MAX_KEY_CHARS:
                raise AuthError("malformed_credential", "paste a whole API key (fg_<prefix>_<secret>)")
            principal = await self.auth.admit(f"Bearer {key}", client_ip)  # the failed-attempt limit
            if principal.kind != "key":
                raise AuthError("key_required", "sign in with an API key, not an edge credential")
        except AuthError as err:
            log.warning("console_sign_in_refused", extra={"reason": err.reason, "client": client_ip})
            raise
        return principal

    async def sign_in(self, key: str, client_ip: str | None) -> tuple[str, Session]:
        """A new session for `key` typed by `client_ip`: (the cookie's token, the session)."""
        principal = await self.verify_key(key, client_ip)
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        async with self.pool.connection() as conn:
            expires = await repo.create(conn, digest(token), principal.id, csrf, self.ttl_s)
        return token, Session(principal, csrf, expires)

    async def session(self, token: str | None) -> Session | None:
        """The live session of a cookie's token (None: none, expired, or its key revoked)."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        async with self.pool.connection() as conn:
            found = await repo.find(conn, digest(token))
        if found is None:
            return None
        prefix, scope, sites, csrf, expires = found
        return Session(Principal("key", prefix, Scope(scope), tuple(sites)), csrf, expires)

    async def sign_out(self, token: str) -> None:
        async with self.pool.connection() as conn:
            await repo.delete(conn, digest(token))


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
