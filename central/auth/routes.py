"""`/api/v1/auth`: exchange an API key for a short-lived token; admins create, list and revoke keys."""

from __future__ import annotations

from typing import Any

from litestar import Request, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.types import ControllerRouterHandler

from central.auth.schemas import ApiKeyRead, KeyCreate, KeyCreated, TokenRead
from central.auth.service import AuthService
from central.principal import Principal, Scope


@post("/auth/token", opt={"any_principal": True, "scope": Scope.VIEWER}, tags=["auth"], status_code=200)
async def token(
    request: Request[Any, Any, Any], principal: NamedDependency[Principal], auth: NamedDependency[AuthService]
) -> TokenRead:
    """A token for the presented API key (or edge credential), valid FACEGATE_TOKEN_TTL_S seconds.
    Send the key itself, not a token: tokens cannot be renewed with tokens."""
    credential = request.headers.get("authorization", "").partition(" ")[2].strip()
    return auth.token(principal, credential)


@get("/auth/keys", opt={"scope": Scope.ADMIN}, tags=["auth"])
async def keys(principal: NamedDependency[Principal], auth: NamedDependency[AuthService]) -> list[ApiKeyRead]:
    """Every API key (prefix, scope, sites, use), never the secrets."""
    return await auth.keys(principal)


@post("/auth/keys", opt={"scope": Scope.ADMIN}, tags=["auth"])
async def new_key(
    data: JSONBody[KeyCreate], principal: NamedDependency[Principal], auth: NamedDependency[AuthService]
) -> KeyCreated:
    """Create an API key; the response holds it once."""
    return await auth.create_key(principal, data)


@delete("/auth/keys/{prefix:str}", opt={"scope": Scope.ADMIN}, tags=["auth"], status_code=200)
async def revoke(
    prefix: FromPath[str], principal: NamedDependency[Principal], auth: NamedDependency[AuthService]
) -> ApiKeyRead:
    """Revoke a key. Replicas drop it, and its tokens, within FACEGATE_KEY_CACHE_S (this one at once)."""
    return await auth.revoke(principal, prefix)


ROUTES: list[ControllerRouterHandler] = [token, keys, new_key, revoke]
