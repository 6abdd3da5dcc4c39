"""Who is calling: an `Authorization: Bearer ...` value turned into a `Principal`, or AuthError (401).

Two kinds of credential are accepted:
- an API key or an edge's API credential (`fg_<prefix>_<secret>`): looked up by prefix in `api_keys`
  (not revoked) and `edges`, then its secret checked against the stored PBKDF2 hash (about 40 ms, run
  off the event loop). Before PBKDF2 runs, `AuthLimiter.check` takes one attempt from the client
  address's and the key prefix's allowance of failures (429 `auth_throttled` when used up), and a key that
  verified gives it back (central/auth/authlimit.py). A key that verified is remembered in process
  for `cache_s` seconds (keyed by a SHA-256 of the whole credential), so a revoked key keeps working
  on a replica for at most that long;
- a token from `POST /api/v1/auth/token` (HS256, three dot-separated parts): checked by signature and
  times, and a key's token also by whether its key (the `sub` claim) is still live: that lookup is
  remembered for `cache_s` too, so a revoked key's tokens stop at once on the replica that revoked it
  (`forget`) and within `cache_s` on the others. Edge tokens end when they expire (FACEGATE_TOKEN_TTL_S).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio.to_thread

from central.auth import repository as repo
from central.auth.authlimit import AuthLimiter
from central.auth.errors import AuthError
from central.auth.keys import KEY_TAG, parse_api_key, verify_secret
from central.auth.tokens import verify_token
from central.db.pool import AsyncPool
from central.principal import Principal, Scope

_MAX_CACHE = 10_000


@dataclass(frozen=True, slots=True)
class _Cached:
    principal: Principal
    until: float


class Authenticator:
    """Turns bearer credentials into principals; safe to share between requests of one app."""

    def __init__(
        self,
        pool: AsyncPool,
        secret_key: str,
        limiter: AuthLimiter,
        *,
        cache_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self.secret_key = secret_key
        self.limiter = limiter
        self.cache_s = cache_s
        self.clock = clock
        self._cache: dict[bytes, _Cached] = {}
        self._live: dict[str, tuple[bool, float]] = {}  # token key prefix -> (live, until)

    async def authenticate(self, authorization: str | None, client_ip: str | None = None) -> Principal:
        credential = bearer(authorization)
        if credential.startswith(KEY_TAG + "_"):
            return await self.from_key(credential, client_ip)
        if credential.count(".") == 2:
            principal = principal_from_token(credential, self.secret_key)
            if principal.kind == "key":
                await self._require_live_key(principal.id)
            return principal
        raise AuthError("malformed_credential", "the bearer credential is neither an API key nor a token")

    async def from_key(self, credential: str, client_ip: str | None = None) -> Principal:
        prefix, secret = parse_api_key(credential)
        digest = hashlib.sha256(credential.encode()).digest()
        now = self.clock()
        cached = self._cache.get(digest)
        if cached is not None and cached.until > now:
            return cached.principal
        self.limiter.refuse_known(client_ip, prefix)  # a flood: 429 at once, no I/O
        await anyio.to_thread.run_sync(self.limiter.check, client_ip, prefix)  # 429 before any PBKDF2
        async with self.pool.connection() as conn:
            found = await repo.find_credential(conn, prefix)
            if found is None:
                raise AuthError("invalid_key", "unknown or revoked API key")
            kind, ident, scope, sites, stored = found
            if not await anyio.to_thread.run_sync(verify_secret, secret, stored):
                raise AuthError("invalid_key", "unknown or revoked API key")
            if kind == "key":
                await repo.touch_key(conn, prefix)
        await anyio.to_thread.run_sync(self.limiter.succeeded, client_ip, prefix)
        principal = (
            Principal("edge", ident, Scope.EDGE, tuple(sites))
            if kind == "edge"
            else Principal("key", ident, Scope(scope), tuple(sites))
        )
        if len(self._cache) >= _MAX_CACHE:
            self._cache.clear()
        self._cache[digest] = _Cached(principal, now + self.cache_s)
        return principal

    async def _require_live_key(self, prefix: str) -> None:
        """AuthError `revoked` when the token's key was revoked (looked up at most every `cache_s`)."""
        now = self.clock()
        known = self._live.get(prefix)
        live = known[0] if known is not None and known[1] > now else None
        if live is None:
            async with self.pool.connection() as conn:
                live = await repo.key_is_live(conn, prefix)
            if len(self._live) >= _MAX_CACHE:
                self._live.clear()
            self._live[prefix] = (live, now + self.cache_s)
        if not live:
            raise AuthError(
                "revoked", "the API key this token was issued for has been revoked; use another key"
            )

    def forget(self) -> None:
        """Drop every remembered key and key state (after a revocation on this replica)."""
        self._cache.clear()
        self._live.clear()


def bearer(authorization: str | None) -> str:
    """The credential of an `Authorization: Bearer <credential>` header."""
    if not authorization or not authorization.strip():
        raise AuthError(
            "missing_credential", "send `Authorization: Bearer <API key or token>` (see docs/central-api.md)"
        )
    scheme, _, credential = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise AuthError("bad_scheme", "use the Bearer scheme: `Authorization: Bearer <API key or token>`")
    return credential.strip()


def principal_from_token(token: str, secret_key: str) -> Principal:
    claims = verify_token(token, secret_key)
    if claims.scope == Scope.EDGE:
        if len(claims.sites) != 1:
            raise AuthError("malformed_token", "an edge token names exactly one site")
        return Principal("edge", claims.sub, Scope.EDGE, claims.sites)
    try:
        scope = Scope(claims.scope)
    except ValueError as err:
        raise AuthError("malformed_token", f"token scope {claims.scope!r} is unknown") from err
    return Principal("key", claims.sub, scope, claims.sites)
