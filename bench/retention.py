"""Retention's cost on 1,000,000 events against a plain DELETE of the same rows:
`python -m bench.retention [--events N] [--database-url URL]`.

Makes a scratch database (migrated), fills `events` and the `event_ids` ledger with N events spread
evenly over the last 12 months at two sites (no crops: the object store is not what is compared), then
copies it (CREATE DATABASE ... TEMPLATE) so both sides start from the same rows. Policies: site `s1`
keeps 90 days, `s2` and the defaults 180 days. Side A: one run of central's retention runner (the months
past 180 days dropped whole, the rest of `s1`'s old rows deleted in batches of 5,000 with their ledger
ids). Side B: the plain statements an operator would write, `DELETE FROM events WHERE ...` for each
site's policy and `DELETE FROM event_ids` of the same ids, each in one transaction. Prints both times,
the rows removed (they must match), and the dead tuples each side leaves for vacuum.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from central.cleanup.service import CleanupService
from central.db import migrate
from central.db.partitions import ensure_event_partitions
from central.db.pool import open_async_pool
from central.metrics import Metrics
from central.retention.runner import RetentionRunner, RetentionSettings
from central.storage import FileSettings, FileStore

FILL = """
INSERT INTO events (id, ts, site_id, edge_id, camera, track_id, kind, score, threshold, quality, bbox,
                    model_id)
SELECT gen_random_uuid(), now() - make_interval(secs => i * %(step)s),
       CASE WHEN i %% 2 = 0 THEN 's1' ELSE 's2' END, 'e', 'cam', i, 'unknown', 0.2, 0.36, 0.9,
       '{0,0,10,10}', 'sface-2021dec'
  FROM generate_series(1, %(n)s) AS i
"""
EXPIRED = (
    "(site_id = 's1' AND ts < %(now)s - interval '90 days')"
    " OR (site_id <> 's1' AND ts < %(now)s - interval '180 days')"
)
PLAIN = [
    f"CREATE TEMP TABLE gone AS SELECT id FROM events WHERE {EXPIRED}",
    f"DELETE FROM events WHERE {EXPIRED}",
    "DELETE FROM event_ids WHERE id IN (SELECT id FROM gone)",
]


def fill(dsn: str, events: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        ensure_event_partitions(conn, datetime.now(UTC), months_ahead=1, months_behind=13)
        conn.execute("INSERT INTO sites (id, name) VALUES ('s1', 's1'), ('s2', 's2')")
        conn.execute(
            "INSERT INTO retention_policies (site_id, events_days, crops_days) VALUES ('s1', 90, 90)"
        )
        conn.execute("UPDATE retention_defaults SET events_days = 180, crops_days = 90")
        with conn.transaction():
            conn.execute("SET LOCAL facegate.moving_events = 'on'")  # the ledger is filled below, in bulk
            conn.execute(FILL, {"n": events, "step": 365 * 86400 / events})
            conn.execute("INSERT INTO event_ids (id, ts) SELECT id, ts FROM events")
        conn.execute("VACUUM ANALYZE")


def dead_tuples(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        row = conn.execute(
            "SELECT coalesce(sum(n_dead_tup), 0) FROM pg_stat_user_tables"
            " WHERE relname LIKE 'events%%' OR relname = 'event_ids'"
        ).fetchone()
    return int(row[0]) if row else 0


def count(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM events").fetchone()
    return int(row[0]) if row else 0


async def run_retention(dsn: str, store_dir: Path, now: datetime) -> tuple[float, dict[str, int], list[str]]:
    pool = await open_async_pool(dsn, 1, 3)
    try:
        metrics = Metrics()
        store = FileStore(FileSettings(store_dir, "x" * 32))
        store.ensure_buckets()
        cleanup = CleanupService(pool, store, metrics)
        runner = RetentionRunner(pool, cleanup, metrics.retention, RetentionSettings(), clock=now.timestamp)
        started = time.perf_counter()
        removed = await runner.run_once()
        took = time.perf_counter() - started
    finally:
        await pool.close()
    assert removed is not None
    return took, removed.rows, removed.partitions


def run_plain(dsn: str, now: datetime) -> float:
    started = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        for statement in PLAIN:
            conn.execute(statement.encode(), {"now": now} if "%(now)s" in statement else None)
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.retention", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--database-url", default=os.environ.get("FACEGATE_DATABASE_URL", "postgresql:///postgres")
    )
    args = parser.parse_args(argv)
    names = [f"facegate_bench_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    with psycopg.connect(args.database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(names[0])))
        try:
            a = psycopg.conninfo.make_conninfo(args.database_url, dbname=names[0])
            b = psycopg.conninfo.make_conninfo(args.database_url, dbname=names[1])
            migrate(a)
            started = time.perf_counter()
            fill(a, args.events)
            print(f"filled {args.events} events in {time.perf_counter() - started:.1f} s")
            admin.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(*map(sql.Identifier, reversed(names)))
            )
            before, now = count(a), datetime.now(UTC)
            with tempfile.TemporaryDirectory() as store_dir:
                took_a, rows, partitions = asyncio.run(run_retention(a, Path(store_dir), now))
            took_b = run_plain(b, now)
            removed_a, removed_b = before - count(a), before - count(b)
            print(f"{'path':<44} {'seconds':>8} {'rows removed':>13} {'dead tuples':>12}")
            for label, took, removed, dsn in (
                ("retention runner (drop + batches of 5000)", took_a, removed_a, a),
                ("plain DELETE (events, then event_ids)", took_b, removed_b, b),
            ):
                print(f"{label:<44} {took:>8.2f} {removed:>13} {dead_tuples(dsn):>12}")
            print(f"partitions dropped: {len(partitions)}; rows by table: {rows}")
            assert removed_a == removed_b, "both sides must remove the same rows"
        finally:
            for name in names:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
