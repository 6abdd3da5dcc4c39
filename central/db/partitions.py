"""Monthly partitions of `events`, created ahead of time (UTC months, named `events_pYYYYMM`).

`events_default` catches any event outside the monthly partitions (a clock far off, a replay of old
data), so ingest never refuses a row for its timestamp. When a month's partition is created later,
the rows of that month are moved out of the default partition in the same transaction (PostgreSQL
would otherwise refuse the new partition: its range must not match rows already in the default).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

DEFAULT_PARTITION = "events_default"
# pg_advisory_xact_lock key serialising partition maintenance ("fg-parts" in ASCII).
PARTITION_LOCK_KEY = 0x66672D7061727473


@dataclass(frozen=True, slots=True)
class MonthPartition:
    """One monthly partition: rows with start <= ts < end."""

    name: str
    start: datetime
    end: datetime


def month_partition(moment: datetime, offset: int = 0) -> MonthPartition:
    """The partition of the UTC month `offset` months after the one holding `moment`."""
    if moment.tzinfo is None:
        raise ValueError("month_partition needs a timezone-aware datetime")
    utc = moment.astimezone(UTC)
    index = utc.year * 12 + utc.month - 1 + offset
    start = datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)
    end = datetime((index + 1) // 12, (index + 1) % 12 + 1, 1, tzinfo=UTC)
    return MonthPartition(f"events_p{start:%Y%m}", start, end)


def planned_partitions(now: datetime, months_ahead: int = 3, months_behind: int = 1) -> list[MonthPartition]:
    """The monthly partitions that should exist around `now`, oldest first."""
    if months_ahead < 0 or months_behind < 0:
        raise ValueError("months_ahead and months_behind must be >= 0")
    return [month_partition(now, offset) for offset in range(-months_behind, months_ahead + 1)]


def ensure_event_partitions(
    conn: psycopg.Connection[tuple[object, ...]],
    now: datetime,
    months_ahead: int = 3,
    months_behind: int = 1,
) -> list[str]:
    """Create the missing partitions from `months_behind` before `now` to `months_ahead` after it.

    Idempotent and safe to run from several processes at once (an advisory lock serialises them).
    Runs in one transaction (a savepoint if `conn` is already in one); returns the names created.
    """
    planned = planned_partitions(now, months_ahead, months_behind)
    created: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK_KEY,))
        existing = _existing_partitions(conn)
        if DEFAULT_PARTITION not in existing:
            conn.execute(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF events DEFAULT")
            created.append(DEFAULT_PARTITION)
        for part in planned:
            if part.name not in existing:
                _create(conn, part)
                created.append(part.name)
    if created:
        log.info("event_partitions_created", extra={"partitions": created})
    return created


def _existing_partitions(conn: psycopg.Connection[tuple[object, ...]]) -> set[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'events'::regclass"
    ).fetchall()
    return {str(row[0]) for row in rows}


def _create(conn: psycopg.Connection[tuple[object, ...]], part: MonthPartition) -> None:
    bounds = (part.start, part.end)
    row = conn.execute(
        f"SELECT EXISTS (SELECT 1 FROM {DEFAULT_PARTITION} WHERE ts >= %s AND ts < %s)", bounds
    ).fetchone()
    stranded = bool(row and row[0])
    if stranded:
        conn.execute("CREATE TEMP TABLE facegate_moving_events (LIKE events)")
        conn.execute(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE ts >= %s AND ts < %s RETURNING *)"
            " INSERT INTO facegate_moving_events SELECT * FROM moved",
            bounds,
        )
    conn.execute(
        sql.SQL("CREATE TABLE {} PARTITION OF events FOR VALUES FROM ({}) TO ({})").format(
            sql.Identifier(part.name), sql.Literal(part.start.isoformat()), sql.Literal(part.end.isoformat())
        )
    )
    if stranded:
        # The ids are already in event_ids: tell the events_claim_id trigger to let these rows pass.
        conn.execute("SELECT set_config('facegate.moving_events', 'on', true)")
        conn.execute("INSERT INTO events SELECT * FROM facegate_moving_events")
        conn.execute("SELECT set_config('facegate.moving_events', 'off', true)")
        conn.execute("DROP TABLE facegate_moving_events")
        log.info("event_partition_rows_moved", extra={"partition": part.name})
