"""The auth service: who is calling (and may they call now), tokens for API keys, the API keys themselves.

`admit` is what the `/api/v1` guard (central/http/guards.py) and the `/ws/events` handler run on every
request: authenticate the bearer credential (401, counted by reason), then take a token of the caller's
rate-limit bucket (429, counted). Key changes are audited in their own transaction; a revocation (and an
edge credential change, through `forget`) drops this replica's cache of verified keys at once.
"""

from __future__ import annotations

import time
from typing import Any

import anyio.to_thread

from central import audit
from central.auth import repository as repo
from central.auth.authenticator import Authenticator
from central.auth.errors import AuthError
from central.auth.ratelimit import RateLimiter
from central.auth.schemas import ApiKeyRead, KeyCreate, KeyCreated, TokenRead
from central.auth.tokens import TokenClaims, issue_token
from central.db.pool import AsyncPool
from central.errors import InvalidInput, NotFound, TooManyRequests
from central.metrics import Metrics
from central.principal import Principal, Scope, require


class AuthService:
    """Authentication, rate limiting, tokens and API keys of one app."""

    def __init__(  # one argument per thing auth needs, wired by central/lifespan.py
        self,
        pool: AsyncPool,
        authenticator: Authenticator,
        limiter: RateLimiter,
        metrics: Metrics,
        *,
        secret_key: str,
        token_ttl_s: int,
        rate_limit_per_s: float,
        rate_limit_burst: int,
    ) -> None:
        self.pool = pool
        self.authenticator = authenticator
        self.limiter = limiter
        self.metrics = metrics
        self.secret_key = secret_key
        self.token_ttl_s = token_ttl_s
        self.rate_limit_per_s = rate_limit_per_s
        self.rate_limit_burst = rate_limit_burst

    async def admit(self, authorization: str | None, client_ip: str | None = None) -> Principal:
        """The caller of an `Authorization` header value sent from `client_ip`; AuthError (401) or
        TooManyRequests (429: too many failed authentications, or the key's rate limit)."""
        try:
            principal = await self.authenticator.authenticate(authorization, client_ip)
        except AuthError as err:
            self.metrics.auth_failures.labels(err.reason).inc()
            raise
        except TooManyRequests as err:
            self.metrics.auth_failures.labels(err.code).inc()
            raise
        decision = await anyio.to_thread.run_sync(self.limiter.hit, rate_key(principal), time.time())
        if not decision.allowed:
            self.metrics.rate_limited.inc()
            raise TooManyRequests(
                f"rate limit of {self.rate_limit_per_s:g} requests/s "
                f"(burst {self.rate_limit_burst}) exceeded for this key; retry later",
                decision.retry_after_s,
            )
        return principal

    def forget(self) -> None:
        """Drop every remembered key (after a revocation or an edge credential change on this replica)."""
        self.authenticator.forget()

    def token(self, principal: Principal, credential: str) -> TokenRead:
        """A token for `principal`, who presented `credential`: an API key or edge credential, not a token."""
        if not credential.startswith("fg_"):
            raise AuthError("key_required", "present the API key itself to get a token, not a token")
        claims = TokenClaims(sub=principal.id, scope=principal.scope.value, sites=principal.sites)
        ttl = self.token_ttl_s
        return TokenRead(issue_token(claims, self.secret_key, ttl), "bearer", ttl, principal.scope.value)

    async def keys(self, principal: Principal) -> list[ApiKeyRead]:
        require(principal, Scope.ADMIN, None)
        async with self.pool.connection() as conn:
            return await repo.list_keys(conn)

    async def create_key(self, principal: Principal, data: KeyCreate) -> KeyCreated:
        require(principal, Scope.ADMIN, None)
        async with self.pool.connection() as conn:
            unknown = await repo.unknown_sites(conn, data.sites)
            if unknown:
                raise InvalidInput(f"unknown sites {unknown}: create them first")
            issued, info = await repo.create_key(conn, data.name, data.scope, data.sites)
            await audit.record(
                conn, principal, "api_key.create", "api_key", issued.prefix, details={"scope": data.scope}
            )
        return KeyCreated(issued.display, info)

    async def revoke(self, principal: Principal, prefix: str) -> ApiKeyRead:
        require(principal, Scope.ADMIN, None)
        async with self.pool.connection() as conn:
            info = await repo.revoke_key(conn, prefix)
            if info is None:
                raise NotFound(f"no API key with prefix {prefix!r}")
            await audit.record(conn, principal, "api_key.revoke", "api_key", prefix)
        self.forget()
        return info

    async def audit_log(
        self, principal: Principal, *, actor: str | None, action: str | None, before: int | None, limit: int
    ) -> list[tuple[int, Any, str, str, str, str, dict[str, Any]]]:
        """The audit log, newest first, filtered by actor and action prefix (unrestricted admins)."""
        require(principal, Scope.ADMIN, None)
        async with self.pool.connection() as conn:
            return await audit.entries(conn, actor=actor, action=action, before=before, limit=limit)


def rate_key(principal: Principal) -> str:
    """The rate-limit bucket of a caller: one per API key, one per edge."""
    if principal.kind == "edge":
        return f"edge:{principal.sites[0]}/{principal.id}"
    return f"key:{principal.id}"
