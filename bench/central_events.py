"""Event listing at scale: COPY rate, then latency of each listing query through the repository.

    .venv/bin/python bench/central_events.py [--events 1000000] [--runs 50] [--database-url URL]

Creates a scratch database `facegate_bench_<random>` on the server of FACEGATE_DATABASE_URL (default
postgresql:///postgres), applies the migrations, creates monthly partitions for the year of data,
COPYs the events (spread over sites, edges, cameras, people and twelve months, a quarter unknown, in
time order as ingest would write them), measures `insert_events` (ingest's path) on 20 000 more in
batches of 500, ANALYZEs, and times each query of GET /api/v1/events and
last-seen through `central.events.repository` (warm cache: the same query repeated). EXPLAIN shows
which index each one uses. The scratch database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql

from central.db import ensure_event_partitions, migrate
from central.events.repository import (
    LAST_SEEN_SQL,
    EventQuery,
    EventRow,
    copy_events,
    get_event,
    insert_events,
    last_seen,
    list_events,
    listing_sql,
)

SITES = 20
EDGES_PER_SITE = 5
CAMERAS_PER_EDGE = 4
PEOPLE = 10_000
UNKNOWN_SHARE = 0.25
DAYS = 365
PAGE = 100
BATCH = 100_000
INSERT_EVENTS = 20_000
INSERT_BATCH = 500


@dataclass(frozen=True, slots=True)
class Fleet:
    """What the generated events are spread over; `person` is one person with events."""

    people: list[uuid.UUID]
    end: datetime


def event_id(ts: datetime, rng: random.Random) -> uuid.UUID:
    """A UUIDv7 for `ts` (the edges' id format: time-ordered)."""
    ms = int(ts.timestamp() * 1000)
    return uuid.UUID(
        int=(ms << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64) | (0b10 << 62) | rng.getrandbits(62)
    )


def make_rows(count: int, start: int, total: int, fleet: Fleet, rng: random.Random) -> list[EventRow]:
    """Events `start`..`start+count` of `total`, evenly spread over DAYS ending at `fleet.end`."""
    span = DAYS * 86400.0
    rows = []
    for i in range(start, start + count):
        ts = fleet.end - timedelta(seconds=span * (1 - i / total) + rng.random())
        site = rng.randrange(SITES)
        person = None if rng.random() < UNKNOWN_SHARE else rng.choice(fleet.people)
        rows.append(
            EventRow(
                id=event_id(ts, rng),
                ts=ts,
                site_id=f"site{site:02d}",
                edge_id=f"edge{rng.randrange(EDGES_PER_SITE)}",
                camera=f"cam{rng.randrange(CAMERAS_PER_EDGE)}",
                track_id=i,
                kind="unknown" if person is None else "recognized",
                person_id=person,
                score=rng.random(),
                threshold=0.363,
                quality=0.8,
                bbox=(10.0, 20.0, 80.0, 96.0),
                model_id="sface-2021dec",
                seq=i,
            )
        )
    return rows


async def load(url: str, total: int, fleet: Fleet) -> float:
    """COPY `total` events in batches; returns rows per second."""
    rng = random.Random(7)
    started = time.perf_counter()
    async with await AsyncConnection.connect(url) as conn:
        for start in range(0, total, BATCH):
            await copy_events(conn, make_rows(min(BATCH, total - start), start, total, fleet, rng))
            await conn.commit()
    return total / (time.perf_counter() - started)


async def insert_rate(url: str, fleet: Fleet, count: int, batch: int) -> float:
    """Events per second through `insert_events` (ingest's path), one transaction per batch."""
    rng = random.Random(11)
    rows = make_rows(count, 0, count, fleet, rng)
    started = time.perf_counter()
    async with await AsyncConnection.connect(url) as conn:
        for start in range(0, count, batch):
            await insert_events(conn, rows[start : start + batch])
            await conn.commit()
    return count / (time.perf_counter() - started)


async def timed(runs: int, call: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """Median and p99 in milliseconds over `runs` calls (after one warm-up call)."""
    await call()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), statistics.quantiles(samples, n=100, method="inclusive")[98]


_PARENT_INDEXES = """
SELECT c.relname, p.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
  JOIN pg_class p ON p.oid = i.inhparent WHERE c.relkind = 'i'
"""
_EMPTY_PARTITIONS = """
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = 'events'::regclass AND c.reltuples <= 0
"""


async def explain(conn: AsyncConnection[Any], query: str, params: dict[str, Any]) -> str:
    """The indexes a plan uses (named by the partitioned index), sequential scans of partitions that
    hold rows (the planner rightly scans empty ones), and whether it sorts."""
    plan = "\n".join(str(row[0]) for row in await (await conn.execute("EXPLAIN " + query, params)).fetchall())
    parents = dict(await (await conn.execute(_PARENT_INDEXES)).fetchall())
    names = sorted({parents.get(n, n) for n in re.findall(r"using (\S+)", plan)})
    empty = {str(r[0]) for r in await (await conn.execute(_EMPTY_PARTITIONS)).fetchall()}
    seq = sorted({n for n in re.findall(r"Seq Scan on (\S+)", plan) if n not in empty})
    notes = [f"SEQ SCAN on {', '.join(seq)}"] if seq else []
    if re.search(r"Sort\s+\(cost", plan):
        notes.append("sort")
    return ", ".join(names + notes)


async def deep_cursor(conn: AsyncConnection[Any], pages: int) -> tuple[datetime, uuid.UUID]:
    """The keyset cursor of page `pages` + 1 of the newest-first listing (walked page by page)."""
    after = None
    for _ in range(pages):
        rows = await list_events(conn, EventQuery(after=after, limit=PAGE))
        after = (rows[-1].ts, rows[-1].id)
    assert after is not None
    return after


async def measure(url: str, fleet: Fleet, runs: int) -> list[tuple[str, float, float, str]]:
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        person = fleet.people[0]
        day = fleet.end - timedelta(days=180)
        queries = {
            "newest page": EventQuery(),
            "by site": EventQuery(sites=("site03",)),
            "by edge": EventQuery(sites=("site03",), edge="edge2"),
            "by camera": EventQuery(camera="cam1"),
            "by person": EventQuery(person_id=person),
            "unknown only": EventQuery(unknown=True),
            "time range (1 day)": EventQuery(since=day, until=day + timedelta(days=1)),
            "3-site restricted key": EventQuery(sites=("site01", "site02", "site03")),
            "site + unknown": EventQuery(sites=("site03",), unknown=True),
            "page 100 (keyset)": EventQuery(after=await deep_cursor(conn, 99)),
        }
        results = []
        for name, query in queries.items():
            page = EventQuery(**{**{f: getattr(query, f) for f in query.__slots__}, "limit": PAGE + 1})
            median, p99 = await timed(runs, lambda q=page: list_events(conn, q))  # type: ignore[misc]
            results.append((name, median, p99, await explain(conn, *listing_sql(page))))
        median, p99 = await timed(runs, lambda: last_seen(conn, person, None))
        results.append(
            ("last seen", median, p99, await explain(conn, LAST_SEEN_SQL, {"person": person, "sites": None}))
        )
        newest = (await list_events(conn, EventQuery(limit=1)))[0].id
        median, p99 = await timed(runs, lambda: get_event(conn, newest))
        results.append(("event by id", median, p99, "event_ids_pkey, then the partition's events_pkey"))
        return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument(
        "--database-url", default=os.environ.get("FACEGATE_DATABASE_URL", "postgresql:///postgres")
    )
    args = parser.parse_args()
    name = f"facegate_bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(args.database_url, autocommit=True)
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(args.database_url, dbname=name)
    try:
        started = time.perf_counter()
        end = datetime.now(UTC).replace(microsecond=0)
        migrate(url, now=end)
        with psycopg.connect(url, autocommit=True) as conn:
            ensure_event_partitions(conn, end, months_ahead=1, months_behind=13)
        fleet = Fleet([uuid.uuid4() for _ in range(PEOPLE)], end)
        rate = asyncio.run(load(url, args.events, fleet))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE events")
            size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()
        print(f"{args.events} events COPYed at {rate:,.0f} events/s; database {size[0] if size else '?'}")
        batched = asyncio.run(insert_rate(url, fleet, INSERT_EVENTS, INSERT_BATCH))
        print(f"insert_events: {batched:,.0f} events/s ({INSERT_EVENTS} more, batches of {INSERT_BATCH})")
        results = asyncio.run(measure(url, fleet, args.runs))
        print(f"\n| query (page of {PAGE}) | median ms | p99 ms | plan: indexes |")
        print("|---|---|---|---|")
        for label, median, p99, plan in results:
            print(f"| {label} | {median:.2f} | {p99:.2f} | {plan} |")
        print(f"\n{args.runs} runs each; total {time.perf_counter() - started:.0f} s")
    finally:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
