"""The `audit_log` table: one entry per change, written in the same transaction as the change it records."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, Connection
from psycopg.types.json import Jsonb

from central.principal import Principal

_INSERT = "INSERT INTO audit_log (actor, action, target_type, target_id, details) VALUES (%s, %s, %s, %s, %s)"
_INSERT_PLAIN = "INSERT INTO audit_log (actor, action, target_type, target_id) VALUES (%s, %s, %s, %s)"


def actor(principal: Principal | None) -> str:
    """`key:<prefix>`, `edge:<site>/<edge>`, or `system` for central's own work."""
    if principal is None:
        return "system"
    if principal.kind == "edge":
        return f"edge:{principal.sites[0]}/{principal.id}"
    return f"key:{principal.id}"


async def record(
    conn: AsyncConnection[Any],
    principal: Principal | None,
    action: str,
    target_type: str,
    target_id: object,
    *,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one entry; `action` is `<noun>.<verb>` such as `person.create`. Never pass face data."""
    await conn.execute(_INSERT, (actor(principal), action, target_type, str(target_id), Jsonb(details or {})))


def record_sync(
    conn: Connection[Any], actor_name: str, action: str, target_type: str, target_id: object
) -> None:
    """`record` for the synchronous connections of the `facegate central` commands (actor e.g. `cli`)."""
    conn.execute(_INSERT_PLAIN, (actor_name, action, target_type, str(target_id)))


_LIST = """
SELECT id, ts, actor, action, target_type, target_id, details FROM audit_log
 WHERE (%(actor)s::text IS NULL OR actor = %(actor)s) AND (%(action)s::text IS NULL OR action LIKE %(action)s)
   AND (%(before)s::bigint IS NULL OR id < %(before)s)
 ORDER BY id DESC LIMIT %(limit)s
"""


async def entries(
    conn: AsyncConnection[Any], *, actor: str | None, action: str | None, before: int | None, limit: int
) -> list[tuple[int, Any, str, str, str, str, dict[str, Any]]]:
    """Newest first: (id, ts, actor, action, target type, target id, details); `action` is a prefix
    (`person.` gives every person change), `before` an id to continue below."""
    prefix = action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%" if action else None
    cur = await conn.execute(_LIST, {"actor": actor, "action": prefix, "before": before, "limit": limit})
    return [tuple(row) for row in await cur.fetchall()]
