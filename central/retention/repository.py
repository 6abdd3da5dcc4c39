"""Retention's SQL: the policies, and the bounded deletes and partition drops that apply them. Every
function runs in the caller's transaction. Object keys of removed rows are queued in
`pending_deletions` in the same transaction (central/cleanup/ deletes the objects)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection, sql

from central.retention.policy import Policies, Policy, effective
from central.retention.schemas import DefaultsRead, DefaultsWrite, SitePolicyWrite

MONTH_PARTITION = re.compile(r"\Aevents_p(\d{4})(\d{2})\Z")
_SITE_COLUMNS = ("events_days", "crops_days", "dead_letters_days", "deliveries_days")


# --- policies ---------------------------------------------------------------------------------------------


async def defaults(conn: AsyncConnection[Any]) -> DefaultsRead:
    cur = await conn.execute(
        "SELECT events_days, crops_days, audit_days, dead_letters_days, deliveries_days, updated_at"
        " FROM retention_defaults WHERE id = 1"
    )
    row = await cur.fetchone()
    assert row is not None, "migration 0042 inserts the defaults row"
    return DefaultsRead(*row)


async def set_defaults(conn: AsyncConnection[Any], data: DefaultsWrite) -> DefaultsRead:
    await conn.execute(
        "UPDATE retention_defaults SET events_days = %s, crops_days = %s, audit_days = %s,"
        " dead_letters_days = %s, deliveries_days = %s, updated_at = now() WHERE id = 1",
        (data.events_days, data.crops_days, data.audit_days, data.dead_letters_days, data.deliveries_days),
    )
    return await defaults(conn)


async def site_own(conn: AsyncConnection[Any], site: str) -> SitePolicyWrite:
    cur = await conn.execute(
        f"SELECT {', '.join(_SITE_COLUMNS)} FROM retention_policies WHERE site_id = %s", (site,)
    )
    row = await cur.fetchone()
    return SitePolicyWrite(*row) if row else SitePolicyWrite()


async def set_site(conn: AsyncConnection[Any], site: str, data: SitePolicyWrite) -> None:
    values = [getattr(data, c) for c in _SITE_COLUMNS]
    await conn.execute(
        f"INSERT INTO retention_policies (site_id, {', '.join(_SITE_COLUMNS)}) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (site_id) DO UPDATE SET events_days = EXCLUDED.events_days,"
        " crops_days = EXCLUDED.crops_days, dead_letters_days = EXCLUDED.dead_letters_days,"
        " deliveries_days = EXCLUDED.deliveries_days, updated_at = now()",
        (site, *values),
    )


async def policies(conn: AsyncConnection[Any]) -> Policies:
    """Every policy in force."""
    base = await defaults(conn)
    default = Policy(base.events_days, base.crops_days, base.dead_letters_days, base.deliveries_days)
    cur = await conn.execute(f"SELECT site_id, {', '.join(_SITE_COLUMNS)} FROM retention_policies")
    sites = {
        row[0]: effective(default, dict(zip(_SITE_COLUMNS, row[1:], strict=True)))
        for row in await cur.fetchall()
    }
    return Policies(default, sites, base.audit_days)


# --- applying them ----------------------------------------------------------------------------------------


async def month_partitions(conn: AsyncConnection[Any]) -> list[tuple[str, datetime, datetime]]:
    """The monthly partitions of `events` (name, start, end), oldest first."""
    cur = await conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'events'::regclass"
    )
    found = []
    for (name,) in await cur.fetchall():
        match = MONTH_PARTITION.match(name)
        if match:
            year, month = int(match[1]), int(match[2])
            start = datetime(year, month, 1, tzinfo=UTC)
            end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
            found.append((name, start, end))
    return sorted(found, key=lambda p: p[1])


async def drop_partition(
    conn: AsyncConnection[Any], name: str, start: datetime, end: datetime
) -> tuple[int, int]:
    """Queue the partition's crops for deletion, forget its event ids, detach and drop it: one
    transaction. Returns (rows dropped, crop objects queued)."""
    table = sql.Identifier(name)
    await conn.execute("SET LOCAL lock_timeout = '5s'")  # DETACH locks `events`: never block ingest long
    await conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(table))
    cur = await conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table))
    row = await cur.fetchone()
    rows = int(row[0]) if row else 0
    cur = await conn.execute(
        sql.SQL(
            "INSERT INTO pending_deletions (object_key) SELECT crop_key FROM {} WHERE crop_key IS NOT NULL"
            " ON CONFLICT (object_key) DO NOTHING"
        ).format(table)
    )
    queued = cur.rowcount
    for table_of_event in ("event_embeddings", "event_corrections"):  # the operator loop's rows go with it
        await conn.execute(
            sql.SQL("DELETE FROM {} WHERE event_id IN (SELECT id FROM {})").format(
                sql.Identifier(table_of_event), table
            )
        )
    await conn.execute("DELETE FROM event_ids WHERE ts >= %s AND ts < %s", (start, end))
    await conn.execute(sql.SQL("ALTER TABLE events DETACH PARTITION {}").format(table))
    await conn.execute(sql.SQL("DROP TABLE {}").format(table))
    return rows, queued


async def delete_events(
    conn: AsyncConnection[Any], site: str | None, others: Sequence[str], before: datetime, limit: int
) -> tuple[int, int]:
    """Delete at most `limit` events of `site` (None: of every site not in `others`) older than `before`,
    their ids from the ledger, their embeddings and corrections, and queue their crops. Returns (rows,
    crops queued)."""
    where = "site_id = %(site)s" if site is not None else "NOT (site_id = ANY(%(others)s))"
    cur = await conn.execute(
        f"WITH gone AS (DELETE FROM events WHERE (id, ts) IN (SELECT id, ts FROM events WHERE {where}"
        " AND ts < %(before)s LIMIT %(limit)s) RETURNING id, crop_key),"
        " ids AS (DELETE FROM event_ids WHERE id IN (SELECT id FROM gone)),"
        " embeddings AS (DELETE FROM event_embeddings WHERE event_id IN (SELECT id FROM gone)),"
        " corrections AS (DELETE FROM event_corrections WHERE event_id IN (SELECT id FROM gone)),"
        " queued AS (INSERT INTO pending_deletions (object_key) SELECT crop_key FROM gone"
        " WHERE crop_key IS NOT NULL ON CONFLICT (object_key) DO NOTHING RETURNING 1)"
        " SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM queued)",
        {"site": site, "others": list(others), "before": before, "limit": limit},
    )
    row = await cur.fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


async def drop_crops(
    conn: AsyncConnection[Any], site: str | None, others: Sequence[str], before: datetime, limit: int
) -> int:
    """Clear the crop of at most `limit` events of `site` (None: not in `others`) older than `before`
    and queue the objects; returns how many."""
    where = "site_id = %(site)s" if site is not None else "NOT (site_id = ANY(%(others)s))"
    cur = await conn.execute(
        f"WITH cleared AS (UPDATE events e SET crop_key = NULL FROM (SELECT id, ts, crop_key FROM events"
        f" WHERE {where} AND crop_key IS NOT NULL AND ts < %(before)s LIMIT %(limit)s) old"
        " WHERE e.id = old.id AND e.ts = old.ts RETURNING old.crop_key),"
        " queued AS (INSERT INTO pending_deletions (object_key) SELECT crop_key FROM cleared"
        " ON CONFLICT (object_key) DO NOTHING RETURNING 1)"
        " SELECT (SELECT count(*) FROM cleared)",
        {"site": site, "others": list(others), "before": before, "limit": limit},
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def delete_rows(
    conn: AsyncConnection[Any], table: str, where: str, params: dict[str, Any], limit: int
) -> int:
    """Delete at most `limit` rows of `table` (audit_log, dead_letters, deliveries) matching `where`."""
    key = "id"
    cur = await conn.execute(
        sql.SQL(
            "DELETE FROM {t} WHERE {k} IN (SELECT {k} FROM {t} WHERE " + where + " LIMIT %(limit)s)"
        ).format(t=sql.Identifier(table), k=sql.Identifier(key)),
        {**params, "limit": limit},
    )
    return cur.rowcount


async def prune_clusters(conn: AsyncConnection[Any]) -> int:
    """Delete the open unknown-face clusters none of whose sightings is kept any more."""
    cur = await conn.execute(
        "DELETE FROM unknown_clusters c WHERE status = 'open'"
        " AND NOT EXISTS (SELECT 1 FROM event_embeddings e WHERE e.cluster_id = c.id)"
    )
    return cur.rowcount


async def oldest(conn: AsyncConnection[Any]) -> dict[str, datetime | None]:
    """The oldest row kept of each table retention manages."""
    cur = await conn.execute(
        "SELECT (SELECT min(ts) FROM events), (SELECT min(ts) FROM audit_log),"
        " (SELECT min(received_at) FROM dead_letters), (SELECT min(created_at) FROM deliveries)"
    )
    row = await cur.fetchone()
    assert row is not None
    return dict(zip(("events", "audit_log", "dead_letters", "deliveries"), row, strict=True))
