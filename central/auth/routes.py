"""`/api/v1/auth`: exchange an API key for a short-lived token; admins create, list and revoke keys."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.types import ControllerRouterHandler

from central import audit
from central.auth.errors import AuthError
from central.auth.repository import ApiKeyRead, create_key, list_keys, revoke_key
from central.auth.scopes import Principal, Scope, require
from central.auth.tokens import TokenClaims, issue_token
from central.errors import InvalidInput, NotFound
from central.runtime import Runtime
from central.schemas import KeyScope, Name, Slug


class TokenRead(msgspec.Struct, frozen=True):
    access_token: str
    token_type: str
    expires_in: int
    scope: str


class KeyCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    scope: KeyScope
    name: Name = ""
    sites: list[Slug] = []


class KeyCreated(msgspec.Struct, frozen=True):
    key: str
    """The API key, shown this once: store it now."""
    info: ApiKeyRead


@post("/auth/token", opt={"any_principal": True, "scope": Scope.VIEWER}, tags=["auth"], status_code=200)
async def token(
    request: Request[Any, Any, Any], principal: NamedDependency[Principal], runtime: NamedDependency[Runtime]
) -> TokenRead:
    """A token for the presented API key (or edge credential), valid FACEGATE_TOKEN_TTL_S seconds.
    Send the key itself, not a token: tokens cannot be renewed with tokens."""
    credential = request.headers.get("authorization", "").partition(" ")[2].strip()
    if not credential.startswith("fg_"):
        raise AuthError("key_required", "present the API key itself to get a token, not a token")
    claims = TokenClaims(sub=principal.id, scope=principal.scope.value, sites=principal.sites)
    ttl = runtime.settings.token_ttl_s
    return TokenRead(
        issue_token(claims, runtime.settings.secret_key, ttl), "bearer", ttl, principal.scope.value
    )


@get("/auth/keys", opt={"scope": Scope.ADMIN}, tags=["auth"])
async def keys(principal: NamedDependency[Principal], runtime: NamedDependency[Runtime]) -> list[ApiKeyRead]:
    """Every API key (prefix, scope, sites, use), never the secrets."""
    require(principal, Scope.ADMIN, None)
    async with runtime.pool.connection() as conn:
        return await list_keys(conn)


@post("/auth/keys", opt={"scope": Scope.ADMIN}, tags=["auth"])
async def new_key(
    data: JSONBody[KeyCreate], principal: NamedDependency[Principal], runtime: NamedDependency[Runtime]
) -> KeyCreated:
    """Create an API key; the response holds it once."""
    require(principal, Scope.ADMIN, None)
    async with runtime.pool.connection() as conn:
        cur = await conn.execute("SELECT id FROM sites WHERE id = ANY(%s)", (data.sites,))
        unknown = set(data.sites) - {row[0] for row in await cur.fetchall()}
        if unknown:
            raise InvalidInput(f"unknown sites {sorted(unknown)}: create them first")
        issued, info = await create_key(conn, data.name, data.scope, data.sites)
        await audit.record(
            conn, principal, "api_key.create", "api_key", issued.prefix, details={"scope": data.scope}
        )
    return KeyCreated(issued.display, info)


@delete("/auth/keys/{prefix:str}", opt={"scope": Scope.ADMIN}, tags=["auth"], status_code=200)
async def revoke(
    prefix: FromPath[str], principal: NamedDependency[Principal], runtime: NamedDependency[Runtime]
) -> ApiKeyRead:
    """Revoke a key. Replicas drop it within FACEGATE_KEY_CACHE_S; its tokens expire on their own."""
    require(principal, Scope.ADMIN, None)
    async with runtime.pool.connection() as conn:
        info = await revoke_key(conn, prefix)
        if info is None:
            raise NotFound(f"no API key with prefix {prefix!r}")
        await audit.record(conn, principal, "api_key.revoke", "api_key", prefix)
    runtime.authenticator.forget()
    return info


ROUTES: list[ControllerRouterHandler] = [token, keys, new_key, revoke]
