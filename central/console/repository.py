"""The `console_sessions` table (migration 0020): one row per signed-in browser, keyed by the SHA-256 of
its cookie's token. A session is valid while unexpired and its key unrevoked."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

_INSERT = """
INSERT INTO console_sessions (id_hash, key_prefix, csrf, expires_at)
VALUES (%s, %s, %s, now() + make_interval(secs => %s)) RETURNING expires_at
"""
_FIND = """
SELECT s.key_prefix, k.scope, k.sites, s.csrf, s.expires_at FROM console_sessions s
  JOIN api_keys k ON k.prefix = s.key_prefix
 WHERE s.id_hash = %s AND s.expires_at > now() AND k.revoked_at IS NULL
"""


async def create(conn: AsyncConnection[Any], id_hash: bytes, prefix: str, csrf: str, ttl_s: int) -> datetime:
    """Store a session; returns when it expires. Expired sessions are removed on the way."""
    await conn.execute("DELETE FROM console_sessions WHERE expires_at <= now()")
    cur = await conn.execute(_INSERT, (id_hash, prefix, csrf, ttl_s))
    row = await cur.fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


async def find(
    conn: AsyncConnection[Any], id_hash: bytes
) -> tuple[str, str, list[str], str, datetime] | None:
    """(key prefix, scope, sites, csrf token, expiry) of a live session, or None."""
    row = await (await conn.execute(_FIND, (id_hash,))).fetchone()
    if row is None:
        return None
    return str(row[0]), str(row[1]), list(row[2]), str(row[3]), row[4]


async def delete(conn: AsyncConnection[Any], id_hash: bytes) -> None:
    await conn.execute("DELETE FROM console_sessions WHERE id_hash = %s", (id_hash,))
