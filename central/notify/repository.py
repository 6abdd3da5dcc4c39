"""Deliveries, their attempts and the watch cooldowns in PostgreSQL. Every function runs inside the
caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from central.notify.schemas import AttemptRead, DeliveryRead
from central.watch.matching import Rule


async def display_names(conn: AsyncConnection[Any], people: Iterable[UUID]) -> dict[UUID | None, str]:
    ids = sorted(set(people))
    if not ids:
        return {}
    cur = await conn.execute(
        "SELECT id, display_name FROM people WHERE id = ANY(%s) AND deleted_at IS NULL", (ids,)
    )
    return {r[0]: r[1] for r in await cur.fetchall()}


async def claim_cooldown(
    conn: AsyncConnection[Any], rule: Rule, person: UUID, *, site: str, camera: str, at: datetime
) -> bool:
    """Whether the rule may fire for `person` on this camera at `at`: no firing within `cooldown_s`
    before or after it. Records `at` when it may (the row lock orders concurrent replicas)."""
    cur = await conn.execute(
        "INSERT INTO watch_cooldowns AS c (rule_id, person_id, site_id, camera, fired_at)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (rule_id, person_id, site_id, camera) DO UPDATE"
        " SET fired_at = greatest(c.fired_at, EXCLUDED.fired_at)"
        " WHERE abs(extract(epoch FROM EXCLUDED.fired_at - c.fired_at)) >= %s RETURNING 1",
        (rule.id, person, site, camera, at, rule.cooldown_s),
    )
    return await cur.fetchone() is not None


async def insert_deliveries(
    conn: AsyncConnection[Any],
    rule: Rule,
    *,
    event_id: UUID,
    ts: datetime,
    site: str,
    payload: dict[str, Any],
) -> int:
    """One pending delivery per channel of the rule (none twice for one event)."""
    cur = await conn.execute(
        "INSERT INTO deliveries (rule_id, channel, event_id, event_ts, site_id, payload)"
        " SELECT %s, unnest(%s::text[]), %s, %s, %s, %s ON CONFLICT DO NOTHING RETURNING id",
        (rule.id, list(rule.channels), event_id, ts, site, Jsonb(payload)),
    )
    return len(await cur.fetchall())


@dataclass(frozen=True, slots=True)
class Due:
    """A claimed delivery and what its rule says now about where it goes (never logged: the secret)."""

    id: UUID
    rule_id: UUID
    rule_name: str
    channel: str
    payload: dict[str, Any]
    attempts: int
    webhook_url: str | None
    webhook_secret: str | None
    email_to: list[str]
    mqtt: bool


async def claim_due(conn: AsyncConnection[Any], limit: int) -> list[Due]:
    """Due pending deliveries, locked until the transaction ends; rows another replica holds are
    skipped (FOR UPDATE SKIP LOCKED), so each is sent by one replica at a time."""
    cur = await conn.execute(
        "SELECT d.id, d.rule_id, r.name, d.channel, d.payload, d.attempts, r.webhook_url,"
        " r.webhook_secret, r.email_to, r.mqtt FROM deliveries d JOIN watch_rules r ON r.id = d.rule_id"
        " WHERE d.status = 'pending' AND d.next_at <= now() ORDER BY d.next_at"
        " LIMIT %s FOR UPDATE OF d SKIP LOCKED",
        (limit,),
    )
    return [Due(*row) for row in await cur.fetchall()]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt's outcome: `sent`, `failed` (retried in `retry_in_s`) or `dead`."""

    delivery: UUID
    outcome: str
    reason: str | None
    duration_ms: int
    retry_in_s: float | None


async def record_attempts(conn: AsyncConnection[Any], attempts: Sequence[Attempt]) -> None:
    """Log the attempts and move each delivery on (two pipelined statements per pass, not per row)."""
    if not attempts:
        return
    status = {"sent": "sent", "failed": "pending", "dead": "dead"}
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO delivery_attempts (delivery_id, outcome, reason, duration_ms)"
            " VALUES (%s, %s, %s, %s)",
            [(a.delivery, a.outcome, a.reason[:1000] if a.reason else None, a.duration_ms) for a in attempts],
        )
        await cur.executemany(
            "UPDATE deliveries SET status = %s, attempts = attempts + 1, last_error = %s,"
            " sent_at = CASE WHEN %s = 'sent' THEN now() END,"
            " next_at = CASE WHEN %s::float8 IS NULL THEN next_at"
            " ELSE now() + make_interval(secs => %s::float8) END WHERE id = %s",
            [
                (
                    status[a.outcome],
                    a.reason[:1000] if a.reason else None,
                    status[a.outcome],
                    a.retry_in_s,
                    a.retry_in_s,
                    a.delivery,
                )
                for a in attempts
            ],
        )


async def backlog(conn: AsyncConnection[Any]) -> tuple[int, float]:
    """Pending deliveries and the age in seconds of the oldest (0 without any)."""
    cur = await conn.execute(
        "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0) FROM deliveries"
        " WHERE status = 'pending'"
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0]), float(row[1])


_DELIVERY = (
    "SELECT id, rule_id, channel, event_id, event_ts, site_id, status, attempts, last_error, next_at,"
    " created_at, sent_at FROM deliveries"
)


async def list_deliveries(
    conn: AsyncConnection[Any],
    *,
    rule: UUID | None,
    status: str | None,
    sites: Sequence[str] | None,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[DeliveryRead]:
    """Newest first, by (created_at, id)."""
    where: list[str] = ["true"]
    params: list[Any] = []
    if rule is not None:
        where.append("rule_id = %s")
        params.append(rule)
    if status is not None:
        where.append("status = %s")
        params.append(status)
    if sites is not None:
        where.append("site_id = ANY(%s)")
        params.append(list(sites))
    if after is not None:
        where.append("(created_at, id) < (%s, %s)")
        params.extend(after)
    cur = await conn.execute(
        f"{_DELIVERY} WHERE {' AND '.join(where)} ORDER BY created_at DESC, id DESC LIMIT %s",
        (*params, limit),
    )
    return [DeliveryRead(*row) for row in await cur.fetchall()]


async def get_delivery(conn: AsyncConnection[Any], ident: UUID) -> DeliveryRead | None:
    cur = await conn.execute(f"{_DELIVERY} WHERE id = %s", (ident,))
    row = await cur.fetchone()
    return DeliveryRead(*row) if row else None


async def attempts(conn: AsyncConnection[Any], delivery: UUID) -> list[AttemptRead]:
    cur = await conn.execute(
        "SELECT at, outcome, reason, duration_ms FROM delivery_attempts WHERE delivery_id = %s ORDER BY id",
        (delivery,),
    )
    return [AttemptRead(*row) for row in await cur.fetchall()]


async def retry_now(conn: AsyncConnection[Any], delivery: UUID) -> bool:
    """Put a dead (or waiting) delivery back in the queue, due now."""
    cur = await conn.execute(
        "UPDATE deliveries SET status = 'pending', next_at = now() WHERE id = %s AND status <> 'sent'"
        " RETURNING id",
        (delivery,),
    )
    return await cur.fetchone() is not None
