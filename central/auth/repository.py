"""API keys in PostgreSQL: create (the secret is returned once, only its hash stored), list, revoke; the
credential lookup of the authenticator (API keys and edge credentials share one prefix space)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection, Connection

from central.auth.keys import IssuedKey, hash_secret, new_api_key
from central.auth.schemas import ApiKeyRead
from central.principal import Scope

_INSERT = (
    "INSERT INTO api_keys (prefix, secret_hash, name, scope, sites) VALUES (%s, %s, %s, %s, %s)"
    " RETURNING created_at"
)
_COLUMNS = "prefix, name, scope, sites, created_at, last_used_at, revoked_at"
_LOOKUP = """
SELECT 'key', prefix, scope, sites, secret_hash FROM api_keys WHERE prefix = %(p)s AND revoked_at IS NULL
UNION ALL
SELECT 'edge', id, 'edge', ARRAY[site_id::text], api_secret_hash FROM edges
 WHERE api_key_prefix = %(p)s AND api_secret_hash IS NOT NULL
"""
_TOUCH_KEY = "UPDATE api_keys SET last_used_at = now() WHERE prefix = %s"
_SITES = "SELECT id FROM sites WHERE id = ANY(%s)"


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


def unknown_sites_sync(conn: Connection[Any], sites: Sequence[str]) -> list[str]:
    """The ids of `sites` that no site has, sorted (for `facegate central create-key`)."""
    known = {row[0] for row in conn.execute(_SITES, (list(sites),))}
    return sorted(set(sites) - known)


async def unknown_sites(conn: AsyncConnection[Any], sites: Sequence[str]) -> list[str]:
    """The ids of `sites` that no site has, sorted."""
    cur = await conn.execute(_SITES, (list(sites),))
    return sorted(set(sites) - {row[0] for row in await cur.fetchall()})


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
    """Revoke the key and end its console sessions (in the caller's transaction); None when unknown."""
    await conn.execute("DELETE FROM console_sessions WHERE key_prefix = %s", (prefix,))
    cur = await conn.execute(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE prefix = %s"
        f" RETURNING {_COLUMNS}",
        (prefix,),
    )
    row = await cur.fetchone()
    return ApiKeyRead(*row) if row else None


async def find_credential(
    conn: AsyncConnection[Any], prefix: str
) -> tuple[str, str, str, list[str], str] | None:
    """(kind "key" or "edge", id, scope, sites, secret hash) of the unrevoked key or edge credential with
    this prefix, or None."""
    rows = await (await conn.execute(_LOOKUP, {"p": prefix})).fetchall()
    if not rows:
        return None
    kind, ident, scope, sites, stored = rows[0]
    return str(kind), str(ident), str(scope), list(sites), str(stored)


async def key_is_live(conn: AsyncConnection[Any], prefix: str) -> bool:
    """Whether an API key with this prefix exists and is not revoked."""
    sql = "SELECT 1 FROM api_keys WHERE prefix = %s AND revoked_at IS NULL"
    return await (await conn.execute(sql, (prefix,))).fetchone() is not None


async def touch_key(conn: AsyncConnection[Any], prefix: str) -> None:
    """Record that the key was just used (`last_used_at`)."""
    await conn.execute(_TOUCH_KEY, (prefix,))
