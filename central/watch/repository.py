"""Watchlists and watch rules in PostgreSQL. Every function runs inside the caller's transaction; no
function returns a webhook secret except `webhook_secret`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection

from central.watch.matching import Rule
from central.watch.schemas import RuleRead, RuleWhen, RuleWrite, WatchlistRead

MQTT_TOPIC = "facegate/notify/v1/{rule}"
"""A rule's MQTT topic: outside `facegate/v1/`, where edges publish."""

_LIST = (
    "SELECT w.id, w.name, coalesce(array_agg(m.person_id ORDER BY m.person_id)"
    " FILTER (WHERE m.person_id IS NOT NULL), '{}'), w.created_at, w.updated_at"
    " FROM watchlists w LEFT JOIN watchlist_members m ON m.watchlist_id = w.id"
)
_RULE_COLUMNS = (
    "id, name, enabled, people, watchlists, unknown, sites, cameras, days, start_minute, end_minute,"
    " cooldown_s, webhook_url, email_to, mqtt, created_at, updated_at"
)


def _watchlist(row: Sequence[Any]) -> WatchlistRead:
    return WatchlistRead(id=row[0], name=row[1], people=list(row[2]), created_at=row[3], updated_at=row[4])


async def list_watchlists(conn: AsyncConnection[Any]) -> list[WatchlistRead]:
    cur = await conn.execute(f"{_LIST} GROUP BY w.id ORDER BY w.name")
    return [_watchlist(r) for r in await cur.fetchall()]


async def get_watchlist(conn: AsyncConnection[Any], ident: UUID) -> WatchlistRead | None:
    cur = await conn.execute(f"{_LIST} WHERE w.id = %s GROUP BY w.id", (ident,))
    row = await cur.fetchone()
    return _watchlist(row) if row else None


async def create_watchlist(conn: AsyncConnection[Any], name: str) -> UUID | None:
    """The new list's id; None when the name is taken."""
    cur = await conn.execute(
        "INSERT INTO watchlists (name) VALUES (%s) ON CONFLICT (name) DO NOTHING RETURNING id", (name,)
    )
    row = await cur.fetchone()
    return row[0] if row else None


async def rename_watchlist(conn: AsyncConnection[Any], ident: UUID, name: str) -> bool:
    """False when the name is taken by another list."""
    cur = await conn.execute(
        "UPDATE watchlists SET name = %s WHERE id = %s AND NOT EXISTS"
        " (SELECT 1 FROM watchlists o WHERE o.name = %s AND o.id <> %s) RETURNING id",
        (name, ident, name, ident),
    )
    return await cur.fetchone() is not None


async def set_members(conn: AsyncConnection[Any], ident: UUID, people: Sequence[UUID]) -> None:
    await conn.execute("DELETE FROM watchlist_members WHERE watchlist_id = %s", (ident,))
    await conn.execute(
        "INSERT INTO watchlist_members (watchlist_id, person_id) SELECT %s, unnest(%s::uuid[])",
        (ident, list(dict.fromkeys(people))),
    )
    await conn.execute("UPDATE watchlists SET updated_at = now() WHERE id = %s", (ident,))


async def delete_watchlist(conn: AsyncConnection[Any], ident: UUID) -> bool:
    cur = await conn.execute("DELETE FROM watchlists WHERE id = %s RETURNING id", (ident,))
    if await cur.fetchone() is None:
        return False
    await conn.execute("UPDATE watch_rules SET watchlists = array_remove(watchlists, %s)", (ident,))
    return True


async def missing_people(conn: AsyncConnection[Any], people: Sequence[UUID]) -> list[UUID]:
    """Those of `people` that do not exist or are erased."""
    cur = await conn.execute(
        "SELECT p FROM unnest(%s::uuid[]) p WHERE NOT EXISTS"
        " (SELECT 1 FROM people WHERE id = p AND deleted_at IS NULL)",
        (list(people),),
    )
    return [r[0] for r in await cur.fetchall()]


async def missing_watchlists(conn: AsyncConnection[Any], ids: Sequence[UUID]) -> list[UUID]:
    cur = await conn.execute(
        "SELECT w FROM unnest(%s::uuid[]) w WHERE NOT EXISTS (SELECT 1 FROM watchlists WHERE id = w)",
        (list(ids),),
    )
    return [r[0] for r in await cur.fetchall()]


async def missing_sites(conn: AsyncConnection[Any], sites: Sequence[str]) -> list[str]:
    cur = await conn.execute(
        "SELECT s FROM unnest(%s::text[]) s WHERE NOT EXISTS (SELECT 1 FROM sites WHERE id = s)",
        (list(sites),),
    )
    return [r[0] for r in await cur.fetchall()]


def _rule(row: Sequence[Any]) -> RuleRead:
    return RuleRead(
        id=row[0],
        name=row[1],
        enabled=row[2],
        people=list(row[3]),
        watchlists=list(row[4]),
        unknown=row[5],
        sites=list(row[6]),
        cameras=list(row[7]),
        when=RuleWhen(days=sorted(row[8]), start_minute=row[9], end_minute=row[10]),
        cooldown_s=row[11],
        webhook_url=row[12],
        email_to=list(row[13]),
        mqtt=row[14],
        mqtt_topic=MQTT_TOPIC.format(rule=row[0]) if row[14] else None,
        created_at=row[15],
        updated_at=row[16],
    )


def _values(data: RuleWrite) -> dict[str, Any]:
    return {
        "name": data.name,
        "enabled": data.enabled,
        "people": list(dict.fromkeys(data.people)),
        "watchlists": list(dict.fromkeys(data.watchlists)),
        "unknown": data.unknown,
        "sites": sorted(set(data.sites)),
        "cameras": sorted(set(data.cameras)),
        "days": sorted(set(data.when.days)),
        "start": data.when.start_minute,
        "end": data.when.end_minute,
        "cooldown": data.cooldown_s,
        "url": data.webhook_url,
        "email": list(dict.fromkeys(data.email_to)),
        "mqtt": data.mqtt,
    }


async def create_rule(conn: AsyncConnection[Any], data: RuleWrite, secret: str | None) -> RuleRead:
    cur = await conn.execute(
        "INSERT INTO watch_rules (name, enabled, people, watchlists, unknown, sites, cameras, days,"
        " start_minute, end_minute, cooldown_s, webhook_url, webhook_secret, email_to, mqtt) VALUES"
        " (%(name)s, %(enabled)s, %(people)s, %(watchlists)s, %(unknown)s, %(sites)s, %(cameras)s,"
        " %(days)s::smallint[], %(start)s, %(end)s, %(cooldown)s, %(url)s, %(secret)s, %(email)s, %(mqtt)s)"
        f" RETURNING {_RULE_COLUMNS}",
        {**_values(data), "secret": secret},
    )
    row = await cur.fetchone()
    assert row is not None
    return _rule(row)


async def replace_rule(
    conn: AsyncConnection[Any], ident: UUID, data: RuleWrite, secret: str | None
) -> RuleRead | None:
    cur = await conn.execute(
        "UPDATE watch_rules SET name = %(name)s, enabled = %(enabled)s, people = %(people)s,"
        " watchlists = %(watchlists)s, unknown = %(unknown)s, sites = %(sites)s, cameras = %(cameras)s,"
        " days = %(days)s::smallint[], start_minute = %(start)s, end_minute = %(end)s,"
        " cooldown_s = %(cooldown)s, webhook_url = %(url)s, webhook_secret = %(secret)s,"
        f" email_to = %(email)s, mqtt = %(mqtt)s WHERE id = %(id)s RETURNING {_RULE_COLUMNS}",
        {**_values(data), "secret": secret, "id": ident},
    )
    row = await cur.fetchone()
    return _rule(row) if row else None


async def get_rule(conn: AsyncConnection[Any], ident: UUID, *, lock: bool = False) -> RuleRead | None:
    suffix = " FOR UPDATE" if lock else ""
    cur = await conn.execute(f"SELECT {_RULE_COLUMNS} FROM watch_rules WHERE id = %s{suffix}", (ident,))
    row = await cur.fetchone()
    return _rule(row) if row else None


async def webhook_secret(conn: AsyncConnection[Any], ident: UUID) -> str | None:
    cur = await conn.execute("SELECT webhook_secret FROM watch_rules WHERE id = %s", (ident,))
    row = await cur.fetchone()
    return row[0] if row else None


async def list_rules(conn: AsyncConnection[Any], sites: Sequence[str] | None) -> list[RuleRead]:
    """Every rule, or (for a restricted key) only those whose sites are all among `sites`."""
    if sites is None:
        cur = await conn.execute(f"SELECT {_RULE_COLUMNS} FROM watch_rules ORDER BY name, id")
    else:
        cur = await conn.execute(
            f"SELECT {_RULE_COLUMNS} FROM watch_rules WHERE sites <> '{{}}' AND sites <@ %s::text[]"
            " ORDER BY name, id",
            (list(sites),),
        )
    return [_rule(r) for r in await cur.fetchall()]


async def delete_rule(conn: AsyncConnection[Any], ident: UUID) -> bool:
    cur = await conn.execute("DELETE FROM watch_rules WHERE id = %s RETURNING id", (ident,))
    return await cur.fetchone() is not None


async def active_rules(conn: AsyncConnection[Any]) -> tuple[list[Rule], dict[UUID, frozenset[UUID]]]:
    """The enabled rules with at least one channel, and the members of each watchlist they name."""
    cur = await conn.execute(
        "SELECT id, name, people, watchlists, unknown, sites, cameras, days, start_minute, end_minute,"
        " cooldown_s, webhook_url IS NOT NULL, cardinality(email_to) > 0, mqtt FROM watch_rules"
        " WHERE enabled AND (webhook_url IS NOT NULL OR cardinality(email_to) > 0 OR mqtt)"
    )
    rules = [
        Rule(
            id=r[0],
            name=r[1],
            people=frozenset(r[2]),
            watchlists=frozenset(r[3]),
            unknown=r[4],
            sites=frozenset(r[5]),
            cameras=frozenset(r[6]),
            days=frozenset(r[7]),
            start_minute=r[8],
            end_minute=r[9],
            cooldown_s=r[10],
            channels=tuple(c for c, on in zip(("webhook", "email", "mqtt"), r[11:14], strict=True) if on),
        )
        for r in await cur.fetchall()
    ]
    lists = sorted({w for rule in rules for w in rule.watchlists})
    members: dict[UUID, set[UUID]] = {w: set() for w in lists}
    if lists:
        cur = await conn.execute(
            "SELECT watchlist_id, person_id FROM watchlist_members WHERE watchlist_id = ANY(%s)", (lists,)
        )
        for watchlist, person in await cur.fetchall():
            members[watchlist].add(person)
    return rules, {w: frozenset(p) for w, p in members.items()}


async def site_zones(conn: AsyncConnection[Any], sites: Sequence[str]) -> dict[str, str]:
    cur = await conn.execute("SELECT id, time_zone FROM sites WHERE id = ANY(%s)", (list(sites),))
    return {r[0]: r[1] for r in await cur.fetchall()}


async def set_integration_login(conn: AsyncConnection[Any], username: str, password_hash: str) -> None:
    await conn.execute(
        "INSERT INTO broker_integrations (username, password_hash) VALUES (%s, %s) ON CONFLICT (username)"
        " DO UPDATE SET password_hash = EXCLUDED.password_hash, created_at = now()",
        (username, password_hash),
    )
