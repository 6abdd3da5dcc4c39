"""Monthly partitions of `events`, created ahead of time (UTC months, named `events_pYYYYMM`).

`events_default` catches any event outside the monthly partitions (a clock far off, a replay of old
data), so ingest never refuses a row for its timestamp. When a month's partition is created later,
the rows of that month are moved out of the default partition in the same transaction (PostgreSQL
would otherwise refuse the new partition: its range must not match rows already in the default).

`migrate` ensures them at start-up; `keep_event_partitions` (a worker started by central/lifespan.py)
ensures them again every `PARTITION_EVERY_S` on every replica.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio.to_thread
import psycopg

from central.db import repository as repo

log = logging.getLogger(__name__)
upkeep_log = logging.getLogger("central.runtime")  # the logger the upkeep's events have always had

DEFAULT_PARTITION = "events_default"
# pg_advisory_xact_lock key serialising partition maintenance ("fg-parts" in ASCII).
PARTITION_LOCK_KEY = 0x66672D7061727473
PARTITION_EVERY_S = 6 * 3600.0
"""How often each replica makes sure next months' event partitions exist (idempotent)."""


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
        repo.lock_transaction(conn, PARTITION_LOCK_KEY)
        existing = repo.event_partitions(conn)
        if DEFAULT_PARTITION not in existing:
            repo.create_default_partition(conn, DEFAULT_PARTITION)
            created.append(DEFAULT_PARTITION)
        for part in planned:
            if part.name not in existing:
                if repo.create_month_partition(conn, DEFAULT_PARTITION, part.name, part.start, part.end):
                    log.info("event_partition_rows_moved", extra={"partition": part.name})
                created.append(part.name)
    if created:
        log.info("event_partitions_created", extra={"partitions": created})
    return created


async def keep_event_partitions(database_url: str) -> None:
    """Every PARTITION_EVERY_S, make sure the partitions around now exist (on its own connection, in a
    worker thread); a failure is logged and retried at the next period (the default partition takes
    events meanwhile). Runs until cancelled."""
    while True:
        await asyncio.sleep(PARTITION_EVERY_S)
        try:
            await anyio.to_thread.run_sync(_ensure_now, database_url)
        except psycopg.Error as err:
            upkeep_log.warning("event_partitions_failed", extra={"error": str(err)})


def _ensure_now(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        created = ensure_event_partitions(conn, datetime.now(UTC))
    if created:
        upkeep_log.info("event_partitions_created", extra={"partitions": created})
