"""API keys in PostgreSQL: create (the secret is returned once, only its hash stored), list, revoke."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
from psycopg import AsyncConnection, Connection

from central.auth.keys import IssuedKey, hash_secret, new_api_key
from central.auth.scopes import Scope

_INSERT = (
    "INSERT INTO api_keys (prefix, secret_hash, name, scope, sites) VALUES (%s, %s, %s, %s, %s)"
    " RETURNING created_at"
)
_COLUMNS = "prefix, name, scope, sites, created_at, last_used_at, revoked_at"


class ApiKeyRead(msgspec.Struct, frozen=True):
    prefix: str
    name: str
    scope: str
    sites: list[str]
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


def check_key_scope(scope: str) -> Scope:
    try:
        parsed = Scope(scope)
    except ValueError as err:
        raise ValueError(f"scope {scope!r}: use admin, operator or viewer") from err
    if parsed is Scope.EDGE:
        raise ValueError("scope 'edge' belongs to edge credentials; use admin, operator or viewer")
    return parsed


def create_key_sync(conn: Connection[Any], name: str, scope: str, sites: Sequence[str] = ()) -> IssuedKey:
    """Store a new key (used by `facegate central create-key`); the caller commits."""
    issued = new_api_key()
    parsed = check_key_scope(scope)
    conn.execute(_INSERT, (issued.prefix, hash_secret(issued.secret), name, parsed, list(sites)))
    return issued


async def create_key(
    conn: AsyncConnection[Any], name: str, scope: str, sites: Sequence[str] = ()
) -> tuple[IssuedKey, ApiKeyRead]:
    issued = new_api_key()
    parsed = check_key_scope(scope)
    cur = await conn.execute(_INSERT, (issued.prefix, hash_secret(issued.secret), name, parsed, list(sites)))
    row = await cur.fetchone()
    assert row is not None
    return issued, ApiKeyRead(issued.prefix, name, parsed.value, list(sites), row[0])


async def list_keys(conn: AsyncConnection[Any]) -> list[ApiKeyRead]:
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at, prefix")
    return [ApiKeyRead(*row) for row in await cur.fetchall()]


async def revoke_key(conn: AsyncConnection[Any], prefix: str) -> ApiKeyRead | None:
    cur = await conn.execute(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE prefix = %s"
        f" RETURNING {_COLUMNS}",
        (prefix,),
    )
    row = await cur.fetchone()
    return ApiKeyRead(*row) if row else None
